"""The accounts tenant page with money columns, and the action that closes a month's statements."""

from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.admin import TenantAdmin
from accounts.models import Tenant
from accounts.services import actor_from_staff
from billing.admin.money import usd_column
from billing.money import micros_to_usd
from billing.selectors.tenants import tenant_list_with_billing
from billing.services.statements import statements_close_month
from project.errors import DomainError

TENANT_MONEY_COLUMNS = ["plan_name", "balance_usd", "images_this_month", "charged_this_month_usd"]


class CloseMonthForm(forms.Form):
    month = forms.CharField(
        max_length=7, help_text="YYYY-MM (UTC). Only a month that has ended can be closed; statements never change."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        last_month = (timezone.now().date().replace(day=1) - timedelta(days=1)).replace(day=1)
        self.fields["month"].initial = f"{last_month:%Y-%m}"

    def clean_month(self) -> date:
        value = self.cleaned_data["month"]
        try:
            year, month = value.split("-")
            return date(int(year), int(month), 1)
        except ValueError as exc:
            raise forms.ValidationError("Write the month as YYYY-MM, e.g. 2026-11.") from exc


# accounts sits below billing and cannot show money, so billing swaps in a subclass of its tenant page.
admin.site.unregister(Tenant)


@admin.register(Tenant)
class TenantBillingAdmin(TenantAdmin):
    list_display = ["slug", "name", "status", *TENANT_MONEY_COLUMNS, "created_at"]
    list_filter = [*TenantAdmin.list_filter, "billing_plan__plan"]
    readonly_fields = ["status", *TENANT_MONEY_COLUMNS, "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return tenant_list_with_billing(tenants=super().get_queryset(request))

    @admin.display(description="plan", ordering="plan_label")
    def plan_name(self, tenant: Tenant) -> str:
        return tenant.plan_label  # type: ignore[attr-defined]

    @admin.display(description="balance (USD)", ordering="wallet__balance_micros")
    def balance_usd(self, tenant: Tenant) -> str:
        wallet = getattr(tenant, "wallet", None)
        return micros_to_usd(wallet.balance_micros) if wallet is not None else "—"

    @admin.display(description="images this month", ordering="month_images")
    def images_this_month(self, tenant: Tenant) -> int:
        return tenant.month_images  # type: ignore[attr-defined]

    charged_this_month_usd = usd_column(
        "month_charged_micros", "charged this month (USD)", ordering="month_charged_micros"
    )

    actions = [*TenantAdmin.actions, "close_statements"]

    def has_close_statements_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.add_statement")

    @admin.action(description="Close a month's statements for the selected tenants", permissions=["close_statements"])
    def close_statements(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> HttpResponse | None:
        """An intermediate page asks which month (the last one by default); statements already closed stay."""
        form = CloseMonthForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            actor = actor_from_staff(request=request)
            try:
                created = sum(
                    statements_close_month(period_start=form.cleaned_data["month"], tenant=tenant, actor=actor)
                    for tenant in queryset
                )
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return None
            self.message_user(
                request,
                f"{form.cleaned_data['month']:%Y-%m}: {created} statement(s) created for {queryset.count()} "
                "tenant(s); months already closed were kept.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Close a month's statements",
            "form": form,
            "tenants": queryset,
            "opts": self.model._meta,
            "action": "close_statements",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/billing/close_statements.html", context)
