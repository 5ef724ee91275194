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

from django.db.models import Q
from django.utils import timezone

from accounts.models import Tenant
from billing.models import Wallet
from billing.money import micros_to_usd
from billing.selectors.alerts import WalletAlertState, wallet_alert_state, wallets_with_thresholds

LOW_BALANCE = "low_balance"
SPEND_LIMIT_NEAR = "spend_limit_near"


@dataclass(frozen=True)
class WalletAlert:
    tenant: Tenant
    kind: str  # LOW_BALANCE or SPEND_LIMIT_NEAR
    data: dict[str, Any]


def wallet_alerts_on_capture(*, tenant_ids: Iterable[int], now: datetime | None = None) -> list[WalletAlert]:
    """Call in the capture's transaction (the wallets are locked by it). The alerts of the wallets that crossed
    a threshold now, each flagged so it is sent once; wallets back above are re-armed."""
    now = now or timezone.now()
    alerts: list[WalletAlert] = []
    for wallet in wallets_with_thresholds(Tenant.objects.filter(pk__in=list(tenant_ids), wallet__isnull=False)):
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
    for wallet in wallets_with_thresholds(Tenant.objects.filter(flagged, pk=tenant.pk)):
        state = wallet_alert_state(wallet=wallet, now=now)
        changes = {}
        if wallet.low_balance_alerted and not state.low_balance:
            changes["low_balance_alerted"] = False
        if wallet.spend_alerted and not state.spend_near:
            changes["spend_alerted"] = False
        if changes:
            Wallet.objects.filter(pk=wallet.pk).update(**changes)


def _low_balance_data(state: WalletAlertState) -> dict[str, Any]:
    wallet = state.wallet
    return {
        "tenant": wallet.tenant.slug,
        "available_usd": micros_to_usd(wallet.available_micros),
        "balance_usd": micros_to_usd(wallet.balance_micros),
        "credit_limit_usd": micros_to_usd(wallet.credit_limit_micros),
        "threshold_usd": micros_to_usd(state.threshold_micros or 0),
    }


def _spend_data(state: WalletAlertState, now: datetime) -> dict[str, Any]:
    return {
        "tenant": state.wallet.tenant.slug,
        "month": f"{now:%Y-%m}",
        "month_spend_usd": micros_to_usd(state.month_spend_micros),
        "monthly_spend_limit_usd": micros_to_usd(state.spend_limit_micros or 0),
        "alert_percent": state.spend_percent,
    }
