"""A tenant's charged usage (CAPTURE rows) over a period, for `GET /v1/usage`."""

from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, Sum
from django.db.models.functions import Coalesce, TruncDate

from accounts.models import Tenant
from billing.models import LedgerEntry

USAGE_GROUPS = {
    "model": "model_id",
    "quality": "quality",
    "size": "size",
    "day": "day",
    "api_key": "api_key__prefix",
}


def usage_rows(
    *, tenant: Tenant, start: datetime, end: datetime, group_by: list[str]
) -> list[dict[str, Any]]:
    """Charged usage in [start, end), grouped by any of USAGE_GROUPS; without a grouping, one row with the
    period's total."""
    if not group_by:
        return [usage_totals(tenant=tenant, start=start, end=end)]
    entries = LedgerEntry.objects.filter(
        tenant=tenant, kind=LedgerEntry.Kind.CAPTURE, created_at__gte=start, created_at__lt=end
    )
    if "day" in group_by:
        entries = entries.annotate(day=TruncDate("created_at", tzinfo=UTC))
    columns = [USAGE_GROUPS[name] for name in group_by]
    rows = (
        entries.values(*columns)
        .annotate(requests=Count("id"), images=Sum("images"), amount_micros=Sum("amount_micros"))
        .order_by(*columns)
    )
    return [
        {
            **{name: row[USAGE_GROUPS[name]] for name in group_by},
            **{k: row[k] for k in ("requests", "images", "amount_micros")},
        }
        for row in rows
    ]


def usage_totals(*, tenant: Tenant, start: datetime, end: datetime) -> dict[str, int]:
    return LedgerEntry.objects.filter(
        tenant=tenant, kind=LedgerEntry.Kind.CAPTURE, created_at__gte=start, created_at__lt=end
    ).aggregate(
        requests=Count("id"),
        images=Coalesce(Sum("images"), 0),
        amount_micros=Coalesce(Sum("amount_micros"), 0),
    )
