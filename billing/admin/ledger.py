"""The ledger: read-only, append-only rows; its page links the staff billing report (`billing.admin.reports`)."""

from functools import partial
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse

from billing.admin.money import usd_column
from billing.admin.reports import billing_report_view
from billing.models import LedgerEntry


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    # Fits a 1366 px screen; quality, size and key are on the entry's page and searchable.
    list_display = [
        "created_at",
        "tenant",
        "kind",
        "reference",
        "amount_usd",
        "model_id",
        "images",
        "cost_usd",
    ]
    list_filter = ["kind", ("created_at", admin.DateFieldListFilter), "tenant"]
    search_fields = ["reference", "tenant__slug", "model_id", "note"]
    fields = ["created_at", "tenant", "kind", "reference", "amount_usd", "api_key", "price", "model_id", "quality",
              "size", "images", "unit_cost_usd", "unit_price_usd", "cost_usd", "actor_user", "note"]
    readonly_fields = fields
    date_hierarchy = "created_at"
    list_select_related = ["tenant", "api_key"]

    amount_usd = usd_column("amount_micros", "amount (USD)", ordering="amount_micros")
    cost_usd = usd_column("cost_micros", "upstream cost (USD)")
    unit_cost_usd = usd_column("unit_cost_micros", "unit cost (USD)", empty="")
    unit_price_usd = usd_column("unit_price_micros", "unit price (USD)", empty="")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LedgerEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LedgerEntry | None = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "report_url": reverse("admin:billing_report")}
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "report/",
                self.admin_site.admin_view(partial(billing_report_view, model_admin=self)),
                name="billing_report",
            ),
            *super().get_urls(),
        ]
