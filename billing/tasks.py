"""django-q2 entry points (scheduled by migration 0004)."""

import structlog
from django.utils import timezone

from billing.selectors.drift import UpstreamCostDrift, WalletDrift, upstream_cost_drifts, wallet_drifts
from billing.services.statements import statements_close_previous_month

logger = structlog.get_logger(__name__)


def log_drifts(drifts: list[WalletDrift]) -> None:
    """Each drift is logged as an error so alerting picks it up."""
    for drift in drifts:
        logger.error(
            "billing.drift",
            tenant=drift.tenant_slug,
            field=drift.field,
            stored=drift.stored,
            expected=drift.expected,
        )


def log_upstream_cost_drifts(drifts: list[UpstreamCostDrift]) -> None:
    """Warnings, not errors: the books add up, the price list is off (`upstream_cost_drifts`)."""
    for drift in drifts:
        logger.warning(
            "billing.upstream_cost_drift",
            model=drift.model_id,
            month=f"{drift.month:%Y-%m}",
            images=drift.images,
            estimate_micros=drift.estimate_micros,
            actual_micros=drift.actual_micros,
            drift_percent=drift.drift_percent,
        )


def billing_check() -> int:
    """The number of wallet drifts (money invariants); upstream cost drifts are logged as warnings."""
    drifts = wallet_drifts()
    log_drifts(drifts)
    log_upstream_cost_drifts(upstream_cost_drifts(now=timezone.now()))
    return len(drifts)


def statements_close() -> int:
    return statements_close_previous_month()
