"""The staff billing report: charged price, upstream cost and margin per group over a period."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, DateField, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate, TruncMonth
from django.utils import timezone

from accounts.models import Tenant
from billing.models import LedgerEntry
from billing.selectors.rollup import actual_sums, daily_usage_ensure, daily_usage_groups, rollup_span

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
    # The upstream's estimate against what it actually charged, per model and UTC month (first day of the month).
    "month_model": ("month", "model_id"),
}
# Internal: one group for the whole period (`billing_totals`); not offered on the report page.
_TOTAL = {"total": ()}



@dataclass(frozen=True)
class ReportRow:
    group: tuple[Any, ...]
    requests: int
    images: int
    price_micros: int
    cost_micros: int
    refunded_cost_micros: int
    # The captures whose actual upstream cost is known (their answers reported token usage): how many images,
    # what the upstream actually charged for them, and what we had estimated for the same captures.
    actual_images: int = 0
    actual_cost_micros: int = 0
    actual_estimate_micros: int = 0

    @property
    def actual_drift_percent(self) -> float | None:
        """Actual against estimate over the captures where both are known, in percent (positive: the upstream
        charged more than estimated); None when no actual cost is known."""
        if not self.actual_images or not self.actual_estimate_micros:
            return None
        return round(100 * (self.actual_cost_micros - self.actual_estimate_micros) / self.actual_estimate_micros, 1)

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
        **actual_sums(),  # first: below, "images" names a sum, which would shadow the field for these
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
        actual_images=sums["actual_images"],
        actual_cost_micros=sums["actual_cost"],
        actual_estimate_micros=sums["actual_estimate"],
    )


def billing_report(
    *, tenant: Tenant | None, start: datetime, end: datetime, group_by: str, now: datetime | None = None
) -> Iterator[ReportRow]:
    """Rows per group, ordered by the group columns (empty values last). Closed days come from the daily rollup
    (`billing.selectors.rollup`), the rest of the period from the ledger; a group's sums add both."""
    columns = {**REPORT_GROUPS, **_TOTAL}[group_by]
    span = rollup_span(start=start, end=end, now=now or timezone.now())
    if span is None:
        yield from _live_rows(tenant=tenant, start=start, end=end, columns=columns)
        return
    daily_usage_ensure(first=span[0], last=span[1])
    merged: dict[tuple[Any, ...], dict[str, int]] = {}
    parts = [
        _live_rows(tenant=tenant, start=start, end=span[0], columns=columns),
        _rollup_rows(tenant=tenant, first=span[0], last=span[1], columns=columns),
        _live_rows(tenant=tenant, start=span[1], end=end, columns=columns),
    ]
    for part in parts:
        for row in part:
            sums = merged.setdefault(row.group, dict.fromkeys(_SUM_NAMES, 0))
            for name, value in zip(_SUM_NAMES, _values(row), strict=True):
                sums[name] += value
    for group in sorted(merged, key=lambda group: tuple((value is None, value) for value in group)):
        yield _row(group, merged[group])


_SUM_NAMES = ("requests", "images", "price", "cost", "refunded_cost", "actual_images", "actual_cost", "actual_estimate")


def _values(row: ReportRow) -> tuple[int, ...]:
    return (
        row.requests, row.images, row.price_micros, row.cost_micros, row.refunded_cost_micros,
        row.actual_images, row.actual_cost_micros, row.actual_estimate_micros,
    )


def _live_rows(*, tenant: Tenant | None, start: datetime, end: datetime, columns: tuple[str, ...]) -> Iterator[ReportRow]:
    if start >= end:
        return
    entries = _settlements(tenant=tenant, start=start, end=end)
    if not columns:  # `values()` of nothing would group by every field
        yield _row((), entries.aggregate(**_sums()))
        return
    if "day" in columns:
        entries = entries.annotate(day=TruncDate("created_at", tzinfo=UTC))
    if "month" in columns:  # a date, like the rollup's months, so both merge into one group
        entries = entries.annotate(month=TruncMonth("created_at", tzinfo=UTC, output_field=DateField()))
    rows = entries.values(*columns).annotate(**_sums()).order_by(*columns)
    for row in rows.iterator(chunk_size=2000):
        yield _row(tuple(row[column] for column in columns), row)


def _rollup_rows(*, tenant: Tenant | None, first: datetime, last: datetime, columns: tuple[str, ...]) -> Iterator[ReportRow]:
    rows = daily_usage_groups(tenant_id=tenant.pk if tenant else None, first=first, last=last, columns=columns)
    if not columns:
        yield _row((), rows)  # the sums of the whole span
        return
    for row in rows.iterator(chunk_size=2000):
        yield _row(tuple(row[column] for column in columns), row)


def billing_totals(*, tenant: Tenant | None, start: datetime, end: datetime, now: datetime | None = None) -> ReportRow:
    """The report's figures summed over the whole period (the report's totals row, the dashboard's tiles)."""
    totals = dict.fromkeys(_SUM_NAMES, 0)
    for row in billing_report(tenant=tenant, start=start, end=end, group_by="total", now=now):
        totals = {name: totals[name] + value for name, value in zip(_SUM_NAMES, _values(row), strict=True)}
    return _row((), totals)
