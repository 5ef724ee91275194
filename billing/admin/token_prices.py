"""Token prices (per 1M tokens, per model): added, ending the model's current row; never edited or deleted."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from accounts.services import actor_from_staff
from billing.admin.money import UsdFormField, usd_column
from billing.model_ids import price_model_id_resolve
from billing.models import TokenPrice
from billing.services.token_prices import TOKEN_KINDS, token_price_set
from project.errors import DomainError

_LABELS = {
    "text_input_micros": "Text input (USD per 1M tokens)",
    "image_input_micros": "Image input (USD per 1M tokens)",
    "text_output_micros": "Text and thinking output (USD per 1M tokens)",
    "image_output_micros": "Image output (USD per 1M tokens)",
}


class TokenPriceAddForm(forms.ModelForm):
    text_input_usd = UsdFormField(label=_LABELS["text_input_micros"], initial="0")
    image_input_usd = UsdFormField(label=_LABELS["image_input_micros"], initial="0")
    text_output_usd = UsdFormField(label=_LABELS["text_output_micros"], initial="0")
    image_output_usd = UsdFormField(label=_LABELS["image_output_micros"], initial="0")

    class Meta:
        model = TokenPrice
        fields = ["model_id", "effective_from", "note"]

    def clean_model_id(self) -> str:
        try:
            return price_model_id_resolve(self.cleaned_data.get("model_id", ""))
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc


@admin.register(TokenPrice)
class TokenPriceAdmin(admin.ModelAdmin):
    """What the upstream charges per million tokens: the actual cost of an answer that reports token usage."""

    list_display = [
        "model_id", "text_input_usd", "image_input_usd", "text_output_usd", "image_output_usd",
        "effective_from", "effective_to", "note",
    ]
    list_filter = ["model_id", ("effective_to", admin.EmptyFieldListFilter)]
    search_fields = ["model_id", "note"]

    text_input_usd = usd_column("text_input_micros", "text in / 1M")
    image_input_usd = usd_column("image_input_micros", "image in / 1M")
    text_output_usd = usd_column("text_output_micros", "text out / 1M")
    image_output_usd = usd_column("image_output_micros", "image out / 1M")

    def get_form(self, request: HttpRequest, obj: TokenPrice | None = None, **kwargs: Any) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = TokenPriceAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: TokenPrice | None = None) -> list[str]:
        money = ["text_input_usd", "image_input_usd", "text_output_usd", "image_output_usd"]
        if obj is None:
            return ["model_id", *money, "effective_from", "note"]
        return ["model_id", *money, "effective_from", "effective_to", "note", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: TokenPrice | None = None) -> list[str]:
        if obj is None:
            return []
        return self.get_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: TokenPrice, form: forms.ModelForm, change: bool) -> None:
        if change:
            return  # rows are never rewritten: a new price is a new row
        saved = token_price_set(
            model_id=obj.model_id,
            effective_from=obj.effective_from,
            note=obj.note,
            actor=actor_from_staff(request=request),
            **{kind: form.cleaned_data[kind.replace("_micros", "_usd")] for kind in TOKEN_KINDS},
        )
        obj.pk = saved.pk

    def has_delete_permission(self, request: HttpRequest, obj: TokenPrice | None = None) -> bool:
        return False
