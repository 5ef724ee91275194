"""Money on staff pages: typed as a decimal USD amount, stored and shown from integer micros."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model

from billing.money import InvalidAmount, micros_to_usd, usd_to_micros


class UsdFormField(forms.CharField):
    """A USD amount typed as a decimal (at most 6 places), cleaned to integer micros."""

    def __init__(self, *, allow_negative: bool = False, **kwargs: Any) -> None:
        self.allow_negative = allow_negative
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        # Stored micros are shown as dollars when the form is displayed.
        return micros_to_usd(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def clean(self, value: Any) -> int | None:
        text = super().clean(value)
        if not self.required and text in self.empty_values:
            return None
        try:
            return usd_to_micros(text, allow_negative=self.allow_negative)
        except InvalidAmount as exc:
            raise forms.ValidationError(str(exc)) from exc


def usd_column(
    attribute: str, description: str, *, ordering: str | None = None, empty: str = "—"
) -> Callable[[admin.ModelAdmin, Model], str]:
    """A ModelAdmin column (or read-only field) showing an amount in micros as USD; `empty` where it is None."""

    @admin.display(description=description, ordering=ordering)
    def column(model_admin: admin.ModelAdmin, obj: Model) -> str:
        value = getattr(obj, attribute)
        return empty if value is None else micros_to_usd(value)

    return column
