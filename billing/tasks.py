"""django-q2 entry points (scheduled by migration 0004)."""

import structlog

from billing.selectors.drift import WalletDrift, wallet_drifts
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


def billing_check() -> int:
    drifts = wallet_drifts()
    log_drifts(drifts)
    return len(drifts)


def statements_close() -> int:
    return statements_close_previous_month()
