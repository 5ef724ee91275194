"""The default plan's values, in one place.

The data migration seeds the `default` plan from these, and the plan rule (`billing.selectors.limits`) falls back
to them when that row is missing (e.g. a test flushed the database). Plain data only: migrations import this
module, so it must never import models or anything that changes with them.
"""

from typing import Any

DEFAULT_PLAN_VALUES: dict[str, Any] = {
    "name": "default",
    "is_default": True,
    "markup_bps": 2000,
    "allowed_models": [],
    "max_n": 10,
    "max_concurrent": 8,
    "images_per_day": 1000,
    "images_per_month": 20000,
    "monthly_spend_limit_micros": None,
    "requests_per_minute": 600,
    "key_monthly_budget_micros": None,
}

# Plan fields added after migration 0003 (which seeds the default plan from DEFAULT_PLAN_VALUES, before these
# columns exist); migrations 0005 and 0006 set them on the default plan.
LATER_DEFAULT_PLAN_VALUES: dict[str, Any] = {
    "max_queued": 100,
    "max_concurrent_waits": 8,
}
