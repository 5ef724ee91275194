"""The ledger: read-only, append-only rows; its page links the staff billing report (`billing.admin.reports`)."""

from functools import partial
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse

from billing.admin.money import usd_column
from billing.admin.reports import billing_report_view
from billing.models import LedgerEntry
from billing.money import micros_to_dollars
from billing.selectors.balances import balance_effect, ledger_balance_after


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    # Fits a 1366 px screen; images, quality, size and key are on the entry's page and searchable.
    # `signed_amount`: what the row did to the wallet's balance (grants and credits +, charges −; holds and releases
    # move held money, shown in brackets); `balance_after`: the wallet's balance once the row was written.
    list_display = [
        "created_at",
        "tenant",
        "kind",
        "reference",
        "signed_amount",
        "balance_after",
        "model_id",
        "cost_usd",
    ]
    list_filter = ["kind", ("created_at", admin.DateFieldListFilter), "tenant"]
    search_fields = ["reference", "tenant__slug", "model_id", "note"]
    fields = ["created_at", "tenant", "kind", "reference", "amount_usd", "api_key", "price", "model_id", "quality",
              "size", "images", "unit_cost_usd", "unit_price_usd", "cost_usd", "actual_cost_usd", "actor_user", "note"]
    readonly_fields = fields
    date_hierarchy = "created_at"
    list_select_related = ["tenant", "api_key"]

    amount_usd = usd_column("amount_micros", "amount (USD)", ordering="amount_micros")

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerEntry]:
        return super().get_queryset(request).annotate(balance_after_micros=ledger_balance_after())

    @admin.display(description="amount", ordering="amount_micros")
    def signed_amount(self, entry: LedgerEntry) -> str:
        effect = balance_effect(entry)
        if entry.kind in (LedgerEntry.Kind.HOLD, LedgerEntry.Kind.RELEASE):
            sign = "held" if entry.kind == LedgerEntry.Kind.HOLD else "released"
            return f"({sign} {micros_to_dollars(entry.amount_micros)})"
        return f"+{micros_to_dollars(effect)}" if effect > 0 else micros_to_dollars(effect)

    @admin.display(description="balance after")
    def balance_after(self, entry: LedgerEntry) -> str:
        value = getattr(entry, "balance_after_micros", None)
        return "—" if value is None else micros_to_dollars(value)
    cost_usd = usd_column("cost_micros", "upstream cost (USD)")
    actual_cost_usd = usd_column(
        "upstream_cost_actual_micros", "actual upstream cost (USD)", empty="— (no token usage reported)"
    )
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
