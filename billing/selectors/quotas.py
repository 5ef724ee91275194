"""Quota status: each of a tenant's limits with its use and when it resets (`GET /v1/quota`)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from accounts.models import ApiKey, Tenant
from billing.models import Wallet
from billing.periods import day_start, month_start, next_month_start
from billing.selectors.ledger import api_key_spend_since, wallet_period_use
from billing.selectors.limits import Limits, tenant_limits


@dataclass(frozen=True)
class QuotaLine:
    name: str
    unit: str  # "images", "generations", "requests", "micros"
    limit: int | None
    used: int
    resets_at: datetime | None

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)


@dataclass(frozen=True)
class TenantActivity:
    """The tenant's work in progress, counted by the caller (generations; billing does not read generations)."""

    running: int
    queued: int
    waits: int


@dataclass(frozen=True)
class QuotaStatus:
    limits: Limits
    wallet: Wallet
    lines: list[QuotaLine]


def quota_status(
    *,
    tenant: Tenant,
    api_key: ApiKey,
    requests_this_minute: int,
    activity: TenantActivity,
    now: datetime | None = None,
) -> QuotaStatus:
    """Each limit with its use. The plan's `max_concurrent` bounds running generations (the forwarder claims no
    more), `max_queued` the ones waiting their turn and `max_concurrent_waits` the requests waiting for a result:
    one line each. (A submit is refused with `queue_full` once running + queued reach the two limits' sum.)"""
    now = now or timezone.now()
    limits = tenant_limits(tenant=tenant, api_key=api_key)
    wallet = Wallet.objects.filter(tenant=tenant).first() or Wallet(tenant=tenant)
    today = wallet_period_use(wallet=wallet, day=day_start(now).date())
    month = wallet_period_use(wallet=wallet, month=month_start(now).date())
    next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    tomorrow = day_start(now) + timedelta(days=1)
    next_month = next_month_start(now)
    lines = [
        QuotaLine("concurrent_generations", "generations", limits.max_concurrent, activity.running, None),
        QuotaLine("queued_generations", "generations", limits.max_queued, activity.queued, None),
        QuotaLine("concurrent_waits", "requests", limits.max_concurrent_waits, activity.waits, None),
        QuotaLine(
            "images_per_day",
            "images",
            limits.images_per_day,
            today.images + wallet.open_hold_images,
            tomorrow,
        ),
        QuotaLine(
            "images_per_month",
            "images",
            limits.images_per_month,
            month.images + wallet.open_hold_images,
            next_month,
        ),
        QuotaLine(
            "monthly_spend",
            "micros",
            limits.monthly_spend_limit_micros,
            month.amount_micros + wallet.held_micros,
            next_month,
        ),
        QuotaLine(
            "key_monthly_budget",
            "micros",
            limits.key_monthly_budget_micros,
            api_key_spend_since(api_key=api_key, since=month_start(now)),
            next_month,
        ),
        QuotaLine(
            "requests_per_minute", "requests", limits.requests_per_minute, requests_this_minute, next_minute
        ),
    ]
    return QuotaStatus(limits=limits, wallet=wallet, lines=lines)
