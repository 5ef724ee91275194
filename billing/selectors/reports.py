"""The staff billing report: charged price, upstream cost and margin per group over a period."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
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
    # Spend over time by model / by tenant (the dashboard's stacked charts).
    "day_model": ("day", "model_id"),
    "day_tenant": ("day", "tenant__slug"),
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

    @property
    def upstream_cost_micros(self) -> int:
        """Everything upstream charged us: delivered images and refunded calls."""
        return self.cost_micros + self.refunded_cost_micros

    @property
    def margin_percent(self) -> float | None:
        """Margin as a percentage of what tenants paid; None when they paid nothing."""
        return round(100 * self.margin_micros / self.price_micros, 1) if self.price_micros else None


def _settlements(*, tenant: Tenant | None, start: datetime, end: datetime) -> QuerySet[LedgerEntry]:
    entries = LedgerEntry.objects.filter(
        kind__in=[Kind.CAPTURE, Kind.RELEASE], created_at__gte=start, created_at__lt=end
    )
    return entries if tenant is None else entries.filter(tenant=tenant)


def _sums() -> dict[str, Any]:
    captured = Q(kind=Kind.CAPTURE)
    return {
        "requests": Count("id", filter=captured),
        "images": Coalesce(Sum("images", filter=captured), 0),
        "price": Coalesce(Sum("amount_micros", filter=captured), 0),
        "cost": Coalesce(Sum("cost_micros", filter=captured), 0),
        "refunded_cost": Coalesce(Sum("cost_micros", filter=Q(kind=Kind.RELEASE)), 0),
    }


def _row(group: tuple[Any, ...], sums: dict[str, Any]) -> ReportRow:
    return ReportRow(
        group=group,
        requests=sums["requests"],
        images=sums["images"],
        price_micros=sums["price"],
        cost_micros=sums["cost"],
        refunded_cost_micros=sums["refunded_cost"],
    )


def billing_report(
    *, tenant: Tenant | None, start: datetime, end: datetime, group_by: str
) -> Iterator[ReportRow]:
    entries = _settlements(tenant=tenant, start=start, end=end)
    columns = REPORT_GROUPS[group_by]
    if "day" in columns:
        entries = entries.annotate(day=TruncDate("created_at", tzinfo=UTC))
    rows = entries.values(*columns).annotate(**_sums()).order_by(*columns)
    for row in rows.iterator(chunk_size=2000):
        yield _row(tuple(row[column] for column in columns), row)


def billing_totals(*, tenant: Tenant | None, start: datetime, end: datetime) -> ReportRow:
    """The report's figures summed over the whole period (the report's totals row, the dashboard's tiles)."""
    return _row((), _settlements(tenant=tenant, start=start, end=end).aggregate(**_sums()))
