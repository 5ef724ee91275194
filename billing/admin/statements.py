"""Monthly statements: read-only, with their lines and a printable page."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from billing.admin.money import usd_column
from billing.models import Statement, StatementLine
from billing.money import micros_to_usd
from billing.reports import statement_html


class StatementLineInline(admin.TabularInline):
    model = StatementLine
    extra = 0
    can_delete = False
    fields = ["model_id", "quality", "size", "charge", "images", "unit_price_usd", "amount_usd"]
    readonly_fields = fields

    @admin.display(description="unit price (USD)")
    def unit_price_usd(self, line: StatementLine) -> str:
        return "—" if line.charge == StatementLine.Charge.CANCELED else micros_to_usd(line.unit_price_micros)

    amount_usd = usd_column("amount_micros", "amount (USD)")

    def has_add_permission(self, request: HttpRequest, obj: Statement | None = None) -> bool:
        return False


@admin.register(Statement)
class StatementAdmin(admin.ModelAdmin):
    list_display = ["tenant", "period_start", "images", "charges_usd", "created_at", "printable"]
    list_filter = ["period_start"]
    search_fields = ["tenant__slug"]
    inlines = [StatementLineInline]
    fields = [
        "tenant",
        "period_start",
        "period_end",
        "images",
        "charges_usd",
        "credits_usd",
        "closing_balance_usd",
        "created_at",
        "printable",
    ]
    readonly_fields = fields

    credits_usd = usd_column("credits_micros", "credits (USD)")
    closing_balance_usd = usd_column("closing_balance_micros", "closing balance (USD)")
    charges_usd = usd_column("charges_micros", "charges (USD)", ordering="charges_micros")

    @admin.display(description="print")
    def printable(self, statement: Statement) -> str:
        return format_html(
            '<a href="{}" target="_blank">printable page</a>',
            reverse("admin:billing_statement_print", args=[statement.pk]),
        )

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:statement_id>/print/",
                self.admin_site.admin_view(self.print_view),
                name="billing_statement_print",
            ),
            *super().get_urls(),
        ]

    def print_view(self, request: HttpRequest, statement_id: int) -> HttpResponse:
        if not request.user.has_perm("billing.view_statement"):
            raise PermissionDenied
        return HttpResponse(statement_html(get_object_or_404(Statement, pk=statement_id)))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Statement | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Statement | None = None) -> bool:
        return False
