import uuid
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.admin import ApiKeyAdmin, TenantAdmin
from accounts.models import ApiKey, Tenant
from accounts.services import actor_from_staff
from billing.admin_reports import billing_report_view
from billing.model_ids import price_model_id_resolve
from billing.models import LedgerEntry, Plan, Price, Statement, StatementLine, TenantPlan, Wallet
from billing.money import InvalidAmount, micros_to_usd, usd_to_micros
from billing.reports import statement_html
from billing.selectors.tenants import tenant_list_with_billing
from billing.services.plans import plan_save, tenant_plan_save
from billing.services.prices import price_end, price_set
from billing.services.statements import statements_close_month
from billing.services.wallets import ReferenceTaken, wallet_adjust, wallet_grant, wallet_set_credit_limit
from project.errors import DomainError


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


# --- API keys: the budget in dollars ---------------------------------------------------------------------


class ApiKeyBudgetForm(forms.ModelForm):
    monthly_budget_micros = UsdFormField(
        required=False, label="Monthly budget (USD)", help_text="Empty: no budget beyond the tenant's limits."
    )

    class Meta:
        model = ApiKey
        fields = ["monthly_budget_micros"]


# accounts cannot parse or show money, so billing swaps in its key page with the budget typed in dollars.
admin.site.unregister(ApiKey)


@admin.register(ApiKey)
class ApiKeyBillingAdmin(ApiKeyAdmin):
    form = ApiKeyBudgetForm


# --- Tenants: the accounts page plus money columns -------------------------------------------------------

TENANT_MONEY_COLUMNS = ["plan_name", "balance_usd", "images_this_month", "charged_this_month_usd"]


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

    @admin.display(description="charged this month (USD)", ordering="month_charged_micros")
    def charged_this_month_usd(self, tenant: Tenant) -> str:
        return micros_to_usd(tenant.month_charged_micros)  # type: ignore[attr-defined]

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


# --- Prices ---------------------------------------------------------------------------------------------


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

    @admin.display(description="cost (USD)", ordering="cost_micros")
    def cost_usd(self, price: Price) -> str:
        return micros_to_usd(price.cost_micros)

    def get_form(
        self, request: HttpRequest, obj: Price | None = None, **kwargs: Any
    ) -> type[forms.ModelForm]:
        kwargs["form"] = PriceAddForm if obj is None else PriceEndForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Price | None = None) -> list[str]:
        if obj is None:
            return ["model_id", "quality", "size", "cost_usd", "effective_from", "note"]
        return [
            "model_id",
            "quality",
            "size",
            "cost_usd",
            "effective_from",
            "effective_to",
            "note",
            "created_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Price | None = None) -> list[str]:
        if obj is None:
            return []
        return ["model_id", "quality", "size", "cost_usd", "effective_from", "note", "created_at"]

    def save_model(self, request: HttpRequest, obj: Price, form: forms.ModelForm, change: bool) -> None:
        if change:
            saved = price_end(
                price=Price.objects.get(pk=obj.pk), effective_to=obj.effective_to, actor=actor_from_staff(request=request)
            )
        else:
            saved = price_set(
                model_id=obj.model_id,
                quality=obj.quality,
                size=obj.size,
                cost_micros=form.cleaned_data["cost_usd"],
                effective_from=obj.effective_from,
                note=obj.note,
                actor=actor_from_staff(request=request),
            )
        obj.pk = saved.pk

    def has_delete_permission(self, request: HttpRequest, obj: Price | None = None) -> bool:
        return False


# --- Plans ----------------------------------------------------------------------------------------------


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
    monthly_spend_limit_micros = UsdFormField(
        required=False, label="Monthly spend limit (USD)", help_text="Empty: the plan's."
    )
    key_monthly_budget_micros = UsdFormField(
        required=False, label="Default monthly budget per key (USD)", help_text="Empty: the plan's."
    )

    class Meta:
        model = TenantPlan
        fields = "__all__"


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

    @admin.display(description="monthly spend limit (USD)", ordering="monthly_spend_limit_micros")
    def monthly_spend_limit_usd(self, plan: Plan) -> str:
        return "—" if plan.monthly_spend_limit_micros is None else micros_to_usd(plan.monthly_spend_limit_micros)

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


# --- Wallets --------------------------------------------------------------------------------------------


class GrantForm(forms.Form):
    amount = UsdFormField(label="Amount (USD)")
    note = forms.CharField(max_length=500, required=False)
    # Generated when the form is shown, so submitting the same form twice grants once. Only that shape is
    # accepted: a hand-made reference could collide with another tenant's or a generation's ledger rows.
    reference = forms.RegexField(regex=r"^admin_grant_[0-9a-f]{32}$", widget=forms.HiddenInput)


class AdjustForm(forms.Form):
    amount = UsdFormField(label="Amount (USD, negative to debit)", allow_negative=True)
    reason = forms.CharField(max_length=500)
    reference = forms.RegexField(regex=r"^admin_adjust_[0-9a-f]{32}$", widget=forms.HiddenInput)


class CreditLimitForm(forms.Form):
    amount = UsdFormField(label="Credit limit (USD)")


WalletOperation = tuple[str, type[forms.Form], Callable[[HttpRequest, Wallet, dict[str, Any]], object]]

WALLET_OPERATIONS: dict[str, WalletOperation] = {
    "grant": (
        "Grant credit",
        GrantForm,
        lambda request, wallet, data: wallet_grant(
            tenant=wallet.tenant,
            amount_micros=data["amount"],
            reference=data["reference"],
            note=data["note"],
            actor=actor_from_staff(request=request),
        ),
    ),
    "adjust": (
        "Adjust balance",
        AdjustForm,
        lambda request, wallet, data: wallet_adjust(
            tenant=wallet.tenant,
            amount_micros=data["amount"],
            reason=data["reason"],
            reference=data["reference"],
            actor=actor_from_staff(request=request),
        ),
    ),
    "credit-limit": (
        "Set credit limit",
        CreditLimitForm,
        lambda request, wallet, data: wallet_set_credit_limit(
            tenant=wallet.tenant, credit_limit_micros=data["amount"], actor=actor_from_staff(request=request)
        ),
    ),
}


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    """Read-only; money moves only through the audited operations linked from each wallet."""

    list_display = [
        "tenant",
        "balance_usd",
        "held_usd",
        "credit_limit_usd",
        "available_usd",
        "open_holds",
        "updated_at",
    ]
    search_fields = ["tenant__slug", "tenant__name"]
    fields = [
        "tenant",
        "balance_usd",
        "held_usd",
        "credit_limit_usd",
        "available_usd",
        "open_holds",
        "open_hold_images",
        "updated_at",
        "operations",
    ]
    readonly_fields = fields

    @admin.display(description="balance (USD)", ordering="balance_micros")
    def balance_usd(self, wallet: Wallet) -> str:
        return micros_to_usd(wallet.balance_micros)

    @admin.display(description="held (USD)")
    def held_usd(self, wallet: Wallet) -> str:
        return micros_to_usd(wallet.held_micros)

    @admin.display(description="credit limit (USD)")
    def credit_limit_usd(self, wallet: Wallet) -> str:
        return micros_to_usd(wallet.credit_limit_micros)

    @admin.display(description="available (USD)")
    def available_usd(self, wallet: Wallet) -> str:
        return micros_to_usd(wallet.available_micros)

    @admin.display(description="operations")
    def operations(self, wallet: Wallet) -> str:
        links = [
            format_html(
                '<a class="button" href="{}">{}</a>',
                reverse("admin:billing_wallet_operation", args=[wallet.pk, slug]),
                title,
            )
            for slug, (title, _, _) in WALLET_OPERATIONS.items()
        ]
        return format_html(" ".join(["{}"] * len(links)), *links)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Wallet | None = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:wallet_id>/operations/<slug:operation>/",
                self.admin_site.admin_view(self.operation_view),
                name="billing_wallet_operation",
            ),
            *super().get_urls(),
        ]

    def operation_view(self, request: HttpRequest, wallet_id: int, operation: str) -> HttpResponse:
        if not request.user.has_perm("billing.change_wallet"):
            raise PermissionDenied
        if operation not in WALLET_OPERATIONS:
            raise Http404
        wallet = get_object_or_404(Wallet.objects.select_related("tenant"), pk=wallet_id)
        title, form_class, perform = WALLET_OPERATIONS[operation]
        if request.method == "POST":
            form = form_class(request.POST)
            if form.is_valid():
                try:
                    perform(request, wallet, form.cleaned_data)
                except DomainError as exc:
                    form.add_error(None, exc.message)
                except ReferenceTaken:
                    form.add_error(None, "This form was already used for another tenant; open it again.")
                else:
                    self.message_user(request, f"{title}: done for {wallet.tenant}.", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:billing_wallet_change", args=[wallet.pk]))
        else:
            form = form_class(initial={"reference": f"admin_{operation}_{uuid.uuid4().hex}"})
        context = {
            **self.admin_site.each_context(request),
            "title": f"{title} — {wallet.tenant}",
            "form": form,
            "wallet": wallet,
            "opts": self.model._meta,
            "available_usd": micros_to_usd(wallet.available_micros),
        }
        return TemplateResponse(request, "admin/billing/wallet_operation.html", context)


# --- Ledger (and the staff billing report, built in billing.admin_reports) ------------------------------


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

    @admin.display(description="amount (USD)", ordering="amount_micros")
    def amount_usd(self, entry: LedgerEntry) -> str:
        return micros_to_usd(entry.amount_micros)

    @admin.display(description="upstream cost (USD)")
    def cost_usd(self, entry: LedgerEntry) -> str:
        return micros_to_usd(entry.cost_micros)

    @admin.display(description="unit cost (USD)")
    def unit_cost_usd(self, entry: LedgerEntry) -> str:
        return "" if entry.unit_cost_micros is None else micros_to_usd(entry.unit_cost_micros)

    @admin.display(description="unit price (USD)")
    def unit_price_usd(self, entry: LedgerEntry) -> str:
        return "" if entry.unit_price_micros is None else micros_to_usd(entry.unit_price_micros)

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


# --- Statements -----------------------------------------------------------------------------------------


class StatementLineInline(admin.TabularInline):
    model = StatementLine
    extra = 0
    can_delete = False
    fields = ["model_id", "quality", "size", "charge", "images", "unit_price_usd", "amount_usd"]
    readonly_fields = fields

    @admin.display(description="unit price (USD)")
    def unit_price_usd(self, line: StatementLine) -> str:
        return "—" if line.charge == StatementLine.Charge.CANCELED else micros_to_usd(line.unit_price_micros)

    @admin.display(description="amount (USD)")
    def amount_usd(self, line: StatementLine) -> str:
        return micros_to_usd(line.amount_micros)

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

    @admin.display(description="credits (USD)")
    def credits_usd(self, statement: Statement) -> str:
        return micros_to_usd(statement.credits_micros)

    @admin.display(description="closing balance (USD)")
    def closing_balance_usd(self, statement: Statement) -> str:
        return micros_to_usd(statement.closing_balance_micros)

    @admin.display(description="charges (USD)", ordering="charges_micros")
    def charges_usd(self, statement: Statement) -> str:
        return micros_to_usd(statement.charges_micros)

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
