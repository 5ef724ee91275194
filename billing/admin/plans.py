"""Plans and a tenant's plan with its overrides: saved through the audited services, never deleted."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from accounts.services import actor_from_staff
from billing.admin.money import UsdFormField, usd_column
from billing.models import Plan, TenantPlan
from billing.services.plans import plan_save, tenant_plan_save


class PlanForm(forms.ModelForm):
    """Money limits typed and shown in dollars (stored as micros)."""

    monthly_spend_limit_micros = UsdFormField(
        required=False, label="Monthly spend limit (USD)", help_text="Empty: no limit."
    )
    key_monthly_budget_micros = UsdFormField(
        required=False, label="Default monthly budget per key (USD)", help_text="Empty: no per-key budget."
    )

    class Meta:
        model = Plan
        fields = "__all__"


class TenantPlanForm(PlanForm):
    """A tenant's overrides: the plan's form, where an empty money limit inherits the plan's."""

    class Meta:
        model = TenantPlan
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("monthly_spend_limit_micros", "key_monthly_budget_micros"):
            self.fields[name].help_text = "Empty: the plan's."


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    form = PlanForm
    list_display = [
        "name",
        "is_default",
        "markup_bps",
        "max_n",
        "max_concurrent",
        "max_queued",
        "max_concurrent_waits",
        "images_per_day",
        "images_per_month",
        "monthly_spend_limit_usd",
        "requests_per_minute",
    ]
    search_fields = ["name"]

    monthly_spend_limit_usd = usd_column(
        "monthly_spend_limit_micros", "monthly spend limit (USD)", ordering="monthly_spend_limit_micros"
    )

    def save_model(self, request: HttpRequest, obj: Plan, form: forms.ModelForm, change: bool) -> None:
        plan_save(plan=obj, actor=actor_from_staff(request=request))

    def has_delete_permission(self, request: HttpRequest, obj: Plan | None = None) -> bool:
        return False


@admin.register(TenantPlan)
class TenantPlanAdmin(admin.ModelAdmin):
    form = TenantPlanForm
    list_display = ["tenant", "plan", "updated_at"]
    list_filter = ["plan"]
    search_fields = ["tenant__slug", "tenant__name"]
    autocomplete_fields = ["tenant"]

    def save_model(self, request: HttpRequest, obj: TenantPlan, form: forms.ModelForm, change: bool) -> None:
        tenant_plan_save(tenant_plan=obj, actor=actor_from_staff(request=request))

    def has_delete_permission(self, request: HttpRequest, obj: TenantPlan | None = None) -> bool:
        return False
