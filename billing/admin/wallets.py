"""Wallets: read-only pages, and the audited operations (grant, adjust, credit limit) each wallet links to."""

import uuid
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from accounts.services import actor_from_staff
from billing.admin.money import UsdFormField, usd_column
from billing.models import Wallet
from billing.money import micros_to_usd
from billing.services.wallets import ReferenceTaken, wallet_adjust, wallet_grant, wallet_set_credit_limit
from project.errors import DomainError


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

    balance_usd = usd_column("balance_micros", "balance (USD)", ordering="balance_micros")
    held_usd = usd_column("held_micros", "held (USD)")
    credit_limit_usd = usd_column("credit_limit_micros", "credit limit (USD)")
    available_usd = usd_column("available_micros", "available (USD)")

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
