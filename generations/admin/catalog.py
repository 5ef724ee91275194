"""The living model catalog for staff: saves validated (naming the broken rule) and audited, served by every
process on its next request; and the report of models nearing shutdown."""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

from accounts.services import actor_from_staff
from generations.models import CatalogModel
from generations.selectors import catalog_shutdown_report
from generations.services.catalog import InvalidCatalogModel, catalog_model_check, catalog_model_save

SHUTDOWN_HORIZON_DAYS = 90


class CatalogModelForm(forms.ModelForm):
    """Refuses rules that could not be served, naming the broken rule, before anything is saved."""

    rules = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 24, "cols": 100, "style": "font-family: monospace"}),
        help_text=CatalogModel._meta.get_field("rules").help_text,
    )

    class Meta:
        model = CatalogModel
        fields = [
            "model_id", "alias", "display_name", "description", "family", "edit_family", "operations", "rules",
            "status", "shutdown_at", "replacement", "serve_with_replacement", "notes",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        row = CatalogModel(
            pk=self.instance.pk,
            **{name: data.get(name) for name in self.Meta.fields if name != "replacement"},
            replacement=data.get("replacement"),
        )
        row.rules = data.get("rules") or {}
        try:
            catalog_model_check(row=row)
        except InvalidCatalogModel as exc:
            field = exc.param if exc.param in self.fields else "rules"
            field = "model_id" if exc.param == "id" else field
            self.add_error(field, exc.message)
        return data


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):
    """The living catalog: saves are validated and audited, and served by every process on its next request."""

    form = CatalogModelForm
    list_display = ["model_id", "alias", "family", "status", "shutdown_at", "replacement", "serve_with_replacement"]
    list_filter = ["status", "family"]
    search_fields = ["model_id", "alias", "display_name"]
    list_select_related = ["replacement"]
    autocomplete_fields = ["replacement"]
    readonly_fields = ["deprecated_at", "created_at", "updated_at"]
    change_list_template = "admin/generations/catalogmodel/change_list.html"

    def save_model(self, request: HttpRequest, obj: CatalogModel, form: forms.ModelForm, change: bool) -> None:
        catalog_model_save(row=obj, actor=actor_from_staff(request=request))

    def has_delete_permission(self, request: HttpRequest, obj: CatalogModel | None = None) -> bool:
        # Generations and prices keep pointing at model ids: retire a model instead.
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path("shutdowns/", self.admin_site.admin_view(self.shutdowns_view), name="generations_catalog_shutdowns"),
            *super().get_urls(),
        ]

    def shutdowns_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Models nearing shutdown",
            "rows": catalog_shutdown_report(now=now, within_days=SHUTDOWN_HORIZON_DAYS),
            "within_days": SHUTDOWN_HORIZON_DAYS,
            "month_start": now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        }
        return TemplateResponse(request, "admin/generations/catalog_shutdowns.html", context)
