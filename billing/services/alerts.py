"""Low-balance and spend-limit alerts: once per crossing, re-armed when the wallet is back above the threshold.

A capture is the only movement that spends, so it is the one that can cross a threshold: its caller (generations'
settle, which may publish webhook events — billing may not) calls `wallet_alerts_on_capture` in the capture's
transaction and publishes what it returns. Grants, adjustments and credit limits only re-arm
(`wallet_alerts_rearm`), so the next crossing alerts again. The thresholds are plan settings
(`low_balance_threshold_micros`, `spend_alert_percent` of `monthly_spend_limit_micros`), overridable per tenant.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Tenant
from billing.models import Wallet
from billing.money import micros_to_usd
from billing.periods import month_start
from billing.selectors.limits import tenant_plan_value

LOW_BALANCE = "low_balance"
SPEND_LIMIT_NEAR = "spend_limit_near"


@dataclass(frozen=True)
class WalletAlert:
    tenant: Tenant
    kind: str  # LOW_BALANCE or SPEND_LIMIT_NEAR
    data: dict[str, Any]


@dataclass(frozen=True)
class _State:
    wallet: Wallet
    low_balance: bool | None  # None: no threshold set
    spend_near: bool | None
    threshold_micros: int | None
    spend_limit_micros: int | None
    spend_percent: int | None
    month_spend_micros: int


def _wallets(tenants: QuerySet[Tenant]) -> list[Wallet]:
    """The tenants' wallets, each with its effective thresholds as `alert_*` attributes (one query)."""
    rows = tenants.select_related("wallet").annotate(
        alert_threshold=tenant_plan_value("low_balance_threshold_micros"),
        alert_percent=tenant_plan_value("spend_alert_percent"),
        alert_spend_limit=tenant_plan_value("monthly_spend_limit_micros"),
    )
    wallets = []
    for tenant in rows.order_by("pk"):
        wallet = tenant.wallet
        wallet.tenant = tenant
        wallet.alert_threshold = tenant.alert_threshold
        wallet.alert_percent = tenant.alert_percent
        wallet.alert_spend_limit = tenant.alert_spend_limit
        wallets.append(wallet)
    return wallets


def wallet_alert_state(*, wallet: Any, now: datetime) -> _State:
    """Where a wallet stands against its thresholds; `wallet` carries the `alert_*` attributes of `_wallets`."""
    threshold = wallet.alert_threshold
    percent, limit = wallet.alert_percent, wallet.alert_spend_limit
    # A counter of an earlier month is this month's zero (see Wallet).
    spend = wallet.month_spend_micros if wallet.month_start == month_start(now).date() else 0
    return _State(
        wallet=wallet,
        low_balance=None if threshold is None else wallet.available_micros <= threshold,
        spend_near=None if not (percent and limit) else spend * 100 >= limit * percent,
        threshold_micros=threshold,
        spend_limit_micros=limit,
        spend_percent=percent,
        month_spend_micros=spend,
    )


def wallet_alerts_on_capture(*, tenant_ids: Iterable[int], now: datetime | None = None) -> list[WalletAlert]:
    """Call in the capture's transaction (the wallets are locked by it). The alerts of the wallets that crossed
    a threshold now, each flagged so it is sent once; wallets back above are re-armed."""
    now = now or timezone.now()
    alerts: list[WalletAlert] = []
    for wallet in _wallets(Tenant.objects.filter(pk__in=list(tenant_ids), wallet__isnull=False)):
        state = wallet_alert_state(wallet=wallet, now=now)
        changes: dict[str, bool] = {}
        if state.low_balance is not None and state.low_balance != wallet.low_balance_alerted:
            changes["low_balance_alerted"] = state.low_balance
            if state.low_balance:
                alerts.append(WalletAlert(wallet.tenant, LOW_BALANCE, _low_balance_data(state)))
        if state.spend_near is not None and state.spend_near != wallet.spend_alerted:
            changes["spend_alerted"] = state.spend_near
            if state.spend_near:
                alerts.append(WalletAlert(wallet.tenant, SPEND_LIMIT_NEAR, _spend_data(state, now)))
        if changes:
            Wallet.objects.filter(pk=wallet.pk).update(**changes)
    return alerts


def wallet_alerts_rearm(*, tenant: Tenant) -> None:
    """After money came in (grant, adjustment, credit limit): clear the flags of thresholds no longer crossed."""
    now = timezone.now()
    flagged = Q(wallet__low_balance_alerted=True) | Q(wallet__spend_alerted=True)
    for wallet in _wallets(Tenant.objects.filter(flagged, pk=tenant.pk)):
        state = wallet_alert_state(wallet=wallet, now=now)
        changes = {}
        if wallet.low_balance_alerted and not state.low_balance:
            changes["low_balance_alerted"] = False
        if wallet.spend_alerted and not state.spend_near:
            changes["spend_alerted"] = False
        if changes:
            Wallet.objects.filter(pk=wallet.pk).update(**changes)


def _low_balance_data(state: _State) -> dict[str, Any]:
    wallet = state.wallet
    return {
        "tenant": wallet.tenant.slug,
        "available_usd": micros_to_usd(wallet.available_micros),
        "balance_usd": micros_to_usd(wallet.balance_micros),
        "credit_limit_usd": micros_to_usd(wallet.credit_limit_micros),
        "threshold_usd": micros_to_usd(state.threshold_micros or 0),
    }


def _spend_data(state: _State, now: datetime) -> dict[str, Any]:
    return {
        "tenant": state.wallet.tenant.slug,
        "month": f"{now:%Y-%m}",
        "month_spend_usd": micros_to_usd(state.month_spend_micros),
        "monthly_spend_limit_usd": micros_to_usd(state.spend_limit_micros or 0),
        "alert_percent": state.spend_percent,
    }
