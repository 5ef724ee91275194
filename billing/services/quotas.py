"""Quotas: the plan limits a request must fit (models, n, concurrency, images per day and month, spend, key
budget), each crossing refused with its own `QuotaExceeded` subclass."""

import math
from datetime import datetime, timedelta

from accounts.models import ApiKey
from billing.models import Wallet
from billing.money import micros_to_usd
from billing.periods import day_start, month_start, next_month_start
from billing.selectors import Limits, api_key_spend_since, tenant_captured_since
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


def _retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def quota_check_locked(
    *, limits: Limits, wallet: Wallet, api_key: ApiKey | None, quote: Quote, now: datetime
) -> None:
    """Raise the first limit the request would cross. The caller holds the wallet lock (`billing_reserve`), so
    the counts it reads cannot race with another request of the same tenant."""
    if not limits.allows_model(quote.model_id):
        raise ModelNotAllowed(f"Your plan does not include '{quote.model_id}'.", param="model")
    if quote.n > limits.max_n:
        raise NAbovePlanLimit(f"Your plan allows at most {limits.max_n} images per request.", param="n")
    # max_concurrent is enforced when the forwarder claims (generations.services.claims): beyond it a submit is
    # accepted and waits. Only the waiting room is bounded here; every open hold is a running or queued one.
    if limits.max_queued is not None:
        room = (limits.max_concurrent or 0) + limits.max_queued
        if wallet.open_holds + 1 > room:
            raise QueueFull(
                f"{wallet.open_holds} generations are already running or waiting (your plan allows "
                f"{limits.max_concurrent} running and {limits.max_queued} waiting); retry when some have finished.",
                retry_after_seconds=_retry_after(QUEUE_FULL_RETRY_AFTER_SECONDS),
            )
    tomorrow = day_start(now) + timedelta(days=1)
    next_month = next_month_start(now)
    if limits.images_per_day is not None:
        today = tenant_captured_since(tenant_id=wallet.tenant_id, since=day_start(now))
        if today.images + wallet.open_hold_images + quote.n > limits.images_per_day:
            raise DailyImageLimit(
                f"This would exceed your limit of {limits.images_per_day} images per day (UTC).",
                retry_after_seconds=_retry_after((tomorrow - now).total_seconds()),
            )
    month = tenant_captured_since(tenant_id=wallet.tenant_id, since=month_start(now))
    if (
        limits.images_per_month is not None
        and month.images + wallet.open_hold_images + quote.n > limits.images_per_month
    ):
        raise MonthlyImageLimit(
            f"This would exceed your limit of {limits.images_per_month} images per month.",
            retry_after_seconds=_retry_after((next_month - now).total_seconds()),
        )
    spend_limit = limits.monthly_spend_limit_micros
    if (
        spend_limit is not None
        and month.amount_micros + wallet.held_micros + quote.estimate_micros > spend_limit
    ):
        raise SpendLimitReached(
            f"This would exceed your monthly spend limit of {micros_to_usd(spend_limit)} USD."
        )
    budget = limits.key_monthly_budget_micros
    if (
        budget is not None
        and api_key is not None
        and api_key_spend_since(api_key=api_key, since=month_start(now)) + quote.estimate_micros > budget
    ):
        raise KeyBudgetReached(
            f"This would exceed this API key's monthly budget of {micros_to_usd(budget)} USD."
        )
