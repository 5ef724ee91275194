"""Quotas: the plan limits a request must fit (models, n, concurrency, images per day and month, spend, key
budget), each crossing refused with its own `QuotaExceeded` subclass."""

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection

from accounts.models import ApiKey, Tenant
from billing.models import Wallet
from billing.money import micros_to_usd
from billing.periods import day_start, month_start, next_month_start
from billing.selectors.ledger import api_key_spend_since
from billing.selectors.limits import Limits
from billing.services.prices import Quote
from project import errors

# A generation usually finishes within a minute; asking the client to come back sooner only burns requests.
QUEUE_FULL_RETRY_AFTER_SECONDS = 5


class QuotaExceeded(errors.DomainError):
    """Base of every quota refusal, so callers can catch them together."""


class ModelNotAllowed(QuotaExceeded, errors.Forbidden):
    code = "model_not_allowed"
    message = "Your plan does not include this model."


class NAbovePlanLimit(QuotaExceeded, errors.InvalidRequest):
    code = "n_above_plan_limit"


class QueueFull(QuotaExceeded, errors.RateLimited):
    code = "queue_full"


class DailyImageLimit(QuotaExceeded, errors.RateLimited):
    code = "daily_image_limit"


class MonthlyImageLimit(QuotaExceeded, errors.RateLimited):
    code = "monthly_image_limit"


class SpendLimitReached(QuotaExceeded, errors.PaymentRequired):
    code = "spend_limit_reached"


class KeyBudgetReached(QuotaExceeded, errors.PaymentRequired):
    code = "key_budget_reached"


class InsufficientCredit(QuotaExceeded, errors.PaymentRequired):
    code = "insufficient_credit"
    message = "Not enough credit for this request. Top up your balance or ask for a credit limit."


def _retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))


@dataclass(frozen=True)
class BillingPeriods:
    """The UTC day and month a movement at `now` counts in, and when they end (for Retry-After)."""

    now: datetime
    day: date
    month: date
    tomorrow: datetime
    next_month: datetime

    @classmethod
    def at(cls, now: datetime) -> "BillingPeriods":
        return cls(
            now=now,
            day=day_start(now).date(),
            month=month_start(now).date(),
            tomorrow=day_start(now) + timedelta(days=1),
            next_month=next_month_start(now),
        )


def _wallet_counter(wallet: Wallet, counter: str, period_field: str, period: date) -> int:
    return getattr(wallet, counter) if getattr(wallet, period_field) == period else 0


def quota_plan_check(*, limits: Limits, quote: Quote) -> None:
    """The limits that depend on the request alone."""
    if not limits.allows_model(quote.model_id):
        raise ModelNotAllowed(f"Your plan does not include '{quote.model_id}'.", param="model")
    if quote.n > limits.max_n:
        raise NAbovePlanLimit(f"Your plan allows at most {limits.max_n} images per request.", param="n")


def _queue_room(limits: Limits) -> int | None:
    """How many of the tenant's generations may be open (running or waiting) at once. `max_concurrent` itself is
    enforced when the forwarder claims (generations.services.claims): beyond it a submit is accepted and waits;
    only the waiting room is bounded here. Every open hold is a running or queued generation."""
    if limits.max_queued is None:
        return None
    return (limits.max_concurrent or 0) + limits.max_queued


def _queue_check(*, limits: Limits, wallet: Wallet) -> None:
    room = _queue_room(limits)
    if room is not None and wallet.open_holds + 1 > room:
        raise QueueFull(
            f"{wallet.open_holds} generations are already running or waiting (your plan allows "
            f"{limits.max_concurrent} running and {limits.max_queued} waiting); retry when some have finished.",
            retry_after_seconds=_retry_after(QUEUE_FULL_RETRY_AFTER_SECONDS),
        )


def _queue_condition(*, limits: Limits) -> tuple[str, list[Any]] | None:
    """`_queue_check` as a condition of the reserving UPDATE."""
    room = _queue_room(limits)
    return None if room is None else ("open_holds < %s", [room])


def quota_wallet_check(*, limits: Limits, wallet: Wallet, quote: Quote, periods: BillingPeriods) -> None:
    """Raise the first limit kept on the wallet row that the request would cross: the conditions of
    `quota_hold_update_sql`, checked in Python to name the limit, in the order a client should hear about them."""
    _queue_check(limits=limits, wallet=wallet)
    now = periods.now
    if limits.images_per_day is not None:
        today = _wallet_counter(wallet, "day_images", "day_start", periods.day)
        if today + wallet.open_hold_images + quote.n > limits.images_per_day:
            raise DailyImageLimit(
                f"This would exceed your limit of {limits.images_per_day} images per day (UTC).",
                retry_after_seconds=_retry_after((periods.tomorrow - now).total_seconds()),
            )
    if limits.images_per_month is not None:
        month = _wallet_counter(wallet, "month_images", "month_start", periods.month)
        if month + wallet.open_hold_images + quote.n > limits.images_per_month:
            raise MonthlyImageLimit(
                f"This would exceed your limit of {limits.images_per_month} images per month.",
                retry_after_seconds=_retry_after((periods.next_month - now).total_seconds()),
            )
    spend_limit = limits.monthly_spend_limit_micros
    if spend_limit is not None:
        spent = _wallet_counter(wallet, "month_spend_micros", "month_start", periods.month)
        if spent + wallet.held_micros + quote.estimate_micros > spend_limit:
            raise SpendLimitReached(
                f"This would exceed your monthly spend limit of {micros_to_usd(spend_limit)} USD."
            )
    if wallet.available_micros < quote.estimate_micros:
        raise InsufficientCredit(
            f"This request needs {micros_to_usd(quote.estimate_micros)} USD; "
            f"{micros_to_usd(max(wallet.available_micros, 0))} USD is available."
        )


_HOLD_SQL = (
    f"UPDATE {Wallet._meta.db_table} SET held_micros = held_micros + %s, open_holds = open_holds + 1, "
    "open_hold_images = open_hold_images + %s, updated_at = %s WHERE tenant_id = %s AND "
)


def quota_hold_update_sql(*, tenant: Tenant, limits: Limits, quote: Quote, periods: BillingPeriods) -> tuple[str, list[Any]]:
    """The reserving UPDATE: hold the estimate if the credit and every limit kept on the wallet row allow it (the
    rules of `quota_wallet_check`). A limit the plan does not set adds nothing. Written out rather than built with
    the ORM: it runs on every submit, and compiling the expressions cost more than running them."""
    conditions: list[tuple[str, list[Any]]] = [
        ("balance_micros - held_micros + credit_limit_micros >= %s", [quote.estimate_micros])
    ]
    queue = _queue_condition(limits=limits)
    if queue is not None:
        conditions.append(queue)
    if limits.images_per_day is not None:
        conditions.append((
            "(CASE WHEN day_start = %s THEN day_images ELSE 0 END) + open_hold_images <= %s",
            [connection.ops.adapt_datefield_value(periods.day), limits.images_per_day - quote.n],
        ))
    if limits.images_per_month is not None:
        conditions.append((
            "(CASE WHEN month_start = %s THEN month_images ELSE 0 END) + open_hold_images <= %s",
            [connection.ops.adapt_datefield_value(periods.month), limits.images_per_month - quote.n],
        ))
    if limits.monthly_spend_limit_micros is not None:
        conditions.append((
            "(CASE WHEN month_start = %s THEN month_spend_micros ELSE 0 END) + held_micros <= %s",
            [
                connection.ops.adapt_datefield_value(periods.month),
                limits.monthly_spend_limit_micros - quote.estimate_micros,
            ],
        ))
    params: list[Any] = [
        quote.estimate_micros, quote.n, connection.ops.adapt_datetimefield_value(periods.now), tenant.pk
    ]
    for _, values in conditions:
        params += values
    return _HOLD_SQL + " AND ".join(f"({text})" for text, _ in conditions) + " RETURNING tenant_id", params


def quota_key_budget_check(*, limits: Limits, api_key: ApiKey | None, quote: Quote, now: datetime, held: bool) -> None:
    """The key's monthly budget: an aggregate, so only when one is set. `held`: the hold being checked is already
    in the ledger (and counted by the aggregate)."""
    budget = limits.key_monthly_budget_micros
    if budget is None or api_key is None:
        return
    spend = api_key_spend_since(api_key=api_key, since=month_start(now)) + (0 if held else quote.estimate_micros)
    if spend > budget:
        raise KeyBudgetReached(
            f"This would exceed this API key's monthly budget of {micros_to_usd(budget)} USD."
        )
