"""The staff billing report: charged price, upstream cost and margin per group over a period."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate

from accounts.models import Tenant
from billing.models import LedgerEntry

Kind = LedgerEntry.Kind

REPORT_GROUPS = {
    "day": ("day",),
    "tenant": ("tenant__slug",),
    "model": ("model_id",),
    "model_quality_size": ("model_id", "quality", "size"),
    "api_key": ("tenant__slug", "api_key__prefix"),
}


@dataclass(frozen=True)
class ReportRow:
    group: tuple[Any, ...]
    requests: int
    images: int
    price_micros: int
    cost_micros: int
    refunded_cost_micros: int

    @property
    def margin_micros(self) -> int:
        """What we earned after paying upstream, including calls we paid for but refunded to the tenant."""
        return self.price_micros - self.cost_micros - self.refunded_cost_micros


def billing_report(
    *, tenant: Tenant | None, start: datetime, end: datetime, group_by: str
) -> Iterator[ReportRow]:
    entries = LedgerEntry.objects.filter(
        kind__in=[Kind.CAPTURE, Kind.RELEASE], created_at__gte=start, created_at__lt=end
    )
    if tenant is not None:
        entries = entries.filter(tenant=tenant)
    columns = REPORT_GROUPS[group_by]
    if "day" in columns:
        entries = entries.annotate(day=TruncDate("created_at", tzinfo=UTC))
    captured = Q(kind=Kind.CAPTURE)
    rows = (
        entries.values(*columns)
        .annotate(
            requests=Count("id", filter=captured),
            images=Coalesce(Sum("images", filter=captured), 0),
            price=Coalesce(Sum("amount_micros", filter=captured), 0),
            cost=Coalesce(Sum("cost_micros", filter=captured), 0),
            refunded_cost=Coalesce(Sum("cost_micros", filter=Q(kind=Kind.RELEASE)), 0),
        )
        .order_by(*columns)
    )
    for row in rows.iterator(chunk_size=2000):
        yield ReportRow(
            group=tuple(row[column] for column in columns),
            requests=row["requests"],
            images=row["images"],
            price_micros=row["price"],
            cost_micros=row["cost"],
            refunded_cost_micros=row["refunded_cost"],
        )
