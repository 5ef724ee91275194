"""Where wallets stand against their alert thresholds (`low_balance_threshold_micros`, `spend_alert_percent` of
`monthly_spend_limit_micros`, by the plan rule): the alerts' one rule (`billing.services.alerts`) and the
dashboard's "near a limit" list."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Tenant
from billing.models import Wallet
from billing.periods import month_start
from billing.selectors.limits import tenant_plan_value


@dataclass(frozen=True)
class WalletAlertState:
    """Where a wallet stands against its alert thresholds; None: that threshold is not set."""

    wallet: Wallet
    low_balance: bool | None
    spend_near: bool | None
    threshold_micros: int | None
    spend_limit_micros: int | None
    spend_percent: int | None
    month_spend_micros: int


def wallets_with_thresholds(tenants: QuerySet[Tenant]) -> list[Wallet]:
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


def wallet_alert_state(*, wallet: Wallet, now: datetime) -> WalletAlertState:
    """Where a wallet stands against its thresholds; `wallet` carries the `alert_*` attributes of `wallets_with_thresholds`."""
    threshold = wallet.alert_threshold
    percent, limit = wallet.alert_percent, wallet.alert_spend_limit
    # A counter of an earlier month is this month's zero (see Wallet).
    spend = wallet.month_spend_micros if wallet.month_start == month_start(now).date() else 0
    return WalletAlertState(
        wallet=wallet,
        low_balance=None if threshold is None else wallet.available_micros <= threshold,
        spend_near=None if not (percent and limit) else spend * 100 >= limit * percent,
        threshold_micros=threshold,
        spend_limit_micros=limit,
        spend_percent=percent,
        month_spend_micros=spend,
    )


def tenants_near_limits(*, tenant: Tenant | None = None, now: datetime | None = None) -> list[WalletAlertState]:
    """Tenants at or past an alert threshold (low balance or near the month's spend limit), lowest available
    money first."""
    now = now or timezone.now()
    tenants = Tenant.objects.filter(wallet__isnull=False)
    if tenant is not None:
        tenants = tenants.filter(pk=tenant.pk)
    states = [wallet_alert_state(wallet=wallet, now=now) for wallet in wallets_with_thresholds(tenants)]
    near = [state for state in states if state.low_balance or state.spend_near]
    return sorted(near, key=lambda state: state.wallet.available_micros)
