"""The living model catalog for staff: saves validated (naming the broken rule) and audited, served by every
process on its next request; the report of models nearing shutdown; and catalog sync against AIHubMix's model list
(one audited button per row: disable, add as a draft)."""

import math
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from accounts.services import actor_from_staff
from generations.catalog.registry import lifecycle_status
from generations.models import CatalogModel
from generations.providers.model_list import ModelListUnavailable, UpstreamModel
from generations.selectors import catalog_shutdown_report
from generations.selectors.catalog_sync import catalog_sync_report
from generations.services.catalog import InvalidCatalogModel, catalog_model_check, catalog_model_save
from generations.services.catalog_sync import NotInSyncReport, catalog_sync_disable, catalog_sync_draft_add
from generations.upstream import upstream_model_list_fetch

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
    # Fits a 1366 px screen: family and status as their short codes (the filters on the right spell them out).
    list_display = ["model_id", "alias", "family_code", "status_code", "shutdown_at", "replacement", "served_by_replacement"]
    list_filter = ["status", "family"]
    search_fields = ["model_id", "alias", "display_name"]
    list_select_related = ["replacement"]
    autocomplete_fields = ["replacement"]
    readonly_fields = ["deprecated_at", "created_at", "updated_at"]
    change_list_template = "admin/generations/catalogmodel/change_list.html"

    @admin.display(description="family", ordering="family")
    def family_code(self, row: CatalogModel) -> str:
        return row.family

    @admin.display(description="status", ordering="status")
    def status_code(self, row: CatalogModel) -> str:
        # What the API applies: past its shutdown date a model is retired whatever its row says.
        return lifecycle_status(status=row.status, shutdown_at=row.shutdown_at)

    @admin.display(description="via repl.", boolean=True, ordering="serve_with_replacement")
    def served_by_replacement(self, row: CatalogModel) -> bool:
        return row.serve_with_replacement

    def save_model(self, request: HttpRequest, obj: CatalogModel, form: forms.ModelForm, change: bool) -> None:
        catalog_model_save(row=obj, actor=actor_from_staff(request=request))

    def has_delete_permission(self, request: HttpRequest, obj: CatalogModel | None = None) -> bool:
        # Generations and prices keep pointing at model ids: retire a model instead.
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path("shutdowns/", self.admin_site.admin_view(self.shutdowns_view), name="generations_catalog_shutdowns"),
            path("upstream/", self.admin_site.admin_view(self.upstream_view), name="generations_catalog_upstream"),
            *super().get_urls(),
        ]

    def upstream_view(self, request: HttpRequest) -> HttpResponse:
        """Catalog sync for staff: the report against AIHubMix's list just read, with one button per row. A POST
        reads the list again and acts only on a row that is still in the report."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            upstream = upstream_model_list_fetch()
        except ModelListUnavailable as exc:
            upstream, problem = None, str(exc)
        else:
            problem = ""
        if request.method == "POST":
            return self._upstream_act(request, upstream, problem)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "AIHubMix's model list and the catalog",
            "problem": problem,
            "report": catalog_sync_report(upstream=upstream) if upstream is not None else None,
            "can_disable": self.has_change_permission(request),
            "can_add": self.has_add_permission(request),
        }
        return TemplateResponse(request, "admin/generations/catalog_upstream.html", context)

    def _upstream_act(self, request: HttpRequest, upstream: list[UpstreamModel] | None, problem: str) -> HttpResponse:
        action, name = request.POST.get("action"), request.POST.get("model", "")
        allowed = {"disable": self.has_change_permission(request), "add_draft": self.has_add_permission(request)}
        if action not in allowed:
            return HttpResponseBadRequest("action must be disable or add_draft")
        if not allowed[action]:
            raise PermissionDenied
        back = HttpResponseRedirect(reverse("admin:generations_catalog_upstream"))
        if upstream is None:
            messages.error(request, f"Nothing changed: {problem}")
            return back
        actor = actor_from_staff(request=request)
        try:
            if action == "disable":
                row = catalog_sync_disable(model_id=name, upstream=upstream, actor=actor)
                messages.success(request, f"Retired {row.model_id}: it is no longer offered.")
            else:
                row = catalog_sync_draft_add(name=name, upstream=upstream, actor=actor)
                messages.success(
                    request,
                    f"Added {row.model_id} as a draft: set its vendor, family, rules and price, then make it active.",
                )
        except (NotInSyncReport, InvalidCatalogModel) as exc:
            messages.error(request, f"Nothing changed: {exc.message}")
        return back

    def shutdowns_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Models nearing shutdown",
            "rows": [
                (row, _days_left(row.shutdown_at, now), row.shutdown_at is not None and row.shutdown_at <= now)
                for row in catalog_shutdown_report(now=now, within_days=SHUTDOWN_HORIZON_DAYS)
            ],
            "within_days": SHUTDOWN_HORIZON_DAYS,
            "month_start": now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        }
        return TemplateResponse(request, "admin/generations/catalog_shutdowns.html", context)


def _days_left(shutdown_at: datetime | None, now: datetime) -> int | None:
    """Whole days until the shutdown, or since it once past (the page flags those as overdue)."""
    if shutdown_at is None:
        return None
    return math.floor(abs((shutdown_at - now).total_seconds()) / 86_400)
