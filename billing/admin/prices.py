"""Upstream prices: added (ending the current row for the same key) or ended, never edited or deleted."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from accounts.services import actor_from_staff
from billing.admin.money import UsdFormField, usd_column
from billing.model_ids import price_model_id_resolve
from billing.models import Price
from billing.services.prices import price_end, price_set
from project.errors import DomainError


class PriceAddForm(forms.ModelForm):
    cost_usd = UsdFormField(label="Cost per image (USD)", help_text="What AIHubMix charges us, e.g. 0.011.")

    class Meta:
        model = Price
        fields = ["model_id", "quality", "size", "effective_from", "note"]

    def clean_model_id(self) -> str:
        try:
            return price_model_id_resolve(self.cleaned_data.get("model_id", ""))
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc


class PriceEndForm(forms.ModelForm):
    """Changing a price only ends it: in the future of both its start and now, and never reopens an ended row."""

    class Meta:
        model = Price
        fields = ["effective_to"]

    def clean_effective_to(self) -> Any:
        effective_to = self.cleaned_data.get("effective_to")
        ended_at = self.instance.effective_to
        if effective_to is None:
            if ended_at is not None:
                raise forms.ValidationError("An ended price cannot be reopened; add a new price instead.")
            return effective_to
        if effective_to <= max(self.instance.effective_from, timezone.now()):
            raise forms.ValidationError("The end must be later than both the price's start and now.")
        if ended_at is not None and ended_at <= timezone.now():
            raise forms.ValidationError("This price has already ended.")
        return effective_to


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    """Prices are effective-dated: adding one ends the current row for the same key; a row's cost never changes."""

    list_display = ["model_id", "quality", "size", "cost_usd", "effective_from", "effective_to", "note"]
    list_filter = ["model_id", ("effective_to", admin.EmptyFieldListFilter)]
    search_fields = ["model_id", "note"]

    cost_usd = usd_column("cost_micros", "cost (USD)", ordering="cost_micros")

    def get_form(
        self, request: HttpRequest, obj: Price | None = None, **kwargs: Any
    ) -> type[forms.ModelForm]:
        kwargs["form"] = PriceAddForm if obj is None else PriceEndForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Price | None = None) -> list[str]:
        if obj is None:
            return ["model_id", "quality", "size", "cost_usd", "effective_from", "note"]
        return ["model_id", "quality", "size", "cost_usd", "effective_from", "effective_to", "note", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Price | None = None) -> list[str]:
        if obj is None:
            return []
        return ["model_id", "quality", "size", "cost_usd", "effective_from", "note", "created_at"]

    def save_model(self, request: HttpRequest, obj: Price, form: forms.ModelForm, change: bool) -> None:
        actor = actor_from_staff(request=request)
        if change:
            saved = price_end(price=Price.objects.get(pk=obj.pk), effective_to=obj.effective_to, actor=actor)
        else:
            saved = price_set(
                model_id=obj.model_id,
                quality=obj.quality,
                size=obj.size,
                cost_micros=form.cleaned_data["cost_usd"],
                effective_from=obj.effective_from,
                note=obj.note,
                actor=actor,
            )
        obj.pk = saved.pk

    def has_delete_permission(self, request: HttpRequest, obj: Price | None = None) -> bool:
        return False
