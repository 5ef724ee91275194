"""The dashboard's generation figures as they were before the daily rollup (`generations.selectors.rollup`), kept
as `bench/dashboard.py`'s baseline: exact, straight from the generations table — on PostgreSQL one scan of the
periods' union with `percentile_cont` sorting every duration, and a GROUP BY over the failed ones per period and
per day."""

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate

from accounts.models import Tenant
from generations.models import Generation
from generations.selectors.metrics import GenerationFigures, RequestStats

Status = Generation.Status
FINAL = [Status.SUCCEEDED, Status.FAILED, Status.CANCELED]


def _generations(*, tenant: Tenant | None, start: datetime, end: datetime) -> QuerySet[Generation]:
    rows = Generation.objects.filter(created_at__gte=start, created_at__lt=end)
    return rows if tenant is None else rows.filter(tenant=tenant)


def _stats_sql(periods: int, tenant: bool) -> str:
    """One scan of the union of the periods, each period's figures as FILTERed aggregates."""
    columns = []
    for i in range(periods):
        within = f"created_at >= %(start{i})s AND created_at < %(end{i})s"
        columns += [
            f"count(*) FILTER (WHERE {within})",
            f"count(*) FILTER (WHERE {within} AND status IN ('succeeded', 'failed', 'canceled'))",
            f"count(*) FILTER (WHERE {within} AND status = 'failed')",
            "percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))"
            f" FILTER (WHERE {within} AND started_at IS NOT NULL)",
            "percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))"
            f" FILTER (WHERE {within} AND status = 'succeeded' AND finished_at IS NOT NULL)",
        ]
    return (
        f"SELECT {', '.join(columns)} FROM generations_generation"
        " WHERE created_at >= %(low)s AND created_at < %(high)s"
        + (" AND tenant_id = %(tenant)s" if tenant else "")
    )


def generation_stats(
    *, tenant: Tenant | None, periods: dict[str, tuple[datetime, datetime]]
) -> dict[str, RequestStats]:
    """Requests created in each period and how they went: one query on PostgreSQL whatever the number of
    periods (they overlap: today, 7 days, month to date)."""
    params: dict[str, object] = {
        "low": min(start for start, _end in periods.values()),
        "high": max(end for _start, end in periods.values()),
        "tenant": tenant.pk if tenant else None,
    }
    for i, (start, end) in enumerate(periods.values()):
        params[f"start{i}"], params[f"end{i}"] = start, end
    with transaction.atomic(), connection.cursor() as cursor:
        # The percentiles sort every duration of the periods (a week is ~230k rows at 1M a month): in memory rather
        # than in temporary files, for this statement only.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(_stats_sql(len(periods), tenant is not None), params)
        values = cursor.fetchone()
    stats = {}
    for i, name in enumerate(periods):
        requests, finished, failed, waits, latencies = values[5 * i : 5 * i + 5]
        waits, latencies = waits or [None, None], latencies or [None, None]
        stats[name] = RequestStats(requests, finished, failed, *_rounded(waits), *_rounded(latencies))
    return stats


def _rounded(values: list[float | None]) -> list[float | None]:
    return [None if value is None else round(float(value), 3) for value in values]


def failures_by_code(
    *, tenant: Tenant | None, periods: dict[str, tuple[datetime, datetime]]
) -> dict[str, list[tuple[str, int]]]:
    """Failed generations of each period per error code, most frequent first (one query for all periods)."""
    low = min(start for start, _end in periods.values())
    high = max(end for _start, end in periods.values())
    counts = {
        f"in_{i}": Count("id", filter=Q(created_at__gte=start, created_at__lt=end))
        for i, (start, end) in enumerate(periods.values())
    }
    rows = list(
        _generations(tenant=tenant, start=low, end=high)
        .filter(status=Status.FAILED)
        .values("error_code")
        .annotate(**counts)
        .order_by("error_code")
    )
    result = {}
    for i, name in enumerate(periods):
        codes = [(row["error_code"] or "unknown", row[f"in_{i}"]) for row in rows if row[f"in_{i}"]]
        result[name] = sorted(codes, key=lambda item: (-item[1], item[0]))
    return result


def failures_series(*, tenant: Tenant | None, now: datetime, days: int) -> tuple[list[str], dict[str, list[int]]]:
    """Failed generations per UTC day and error code over the last `days` days."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    dates = [(start + timedelta(days=i)).date() for i in range(days)]
    index = {day: i for i, day in enumerate(dates)}
    rows = (
        _generations(tenant=tenant, start=start, end=now)
        .filter(status=Status.FAILED)
        .annotate(day=TruncDate("created_at"))
        .values("day", "error_code")
        .annotate(count=Count("id"))
        .order_by()
    )
    series: dict[str, list[int]] = {}
    for row in rows:
        series.setdefault(row["error_code"] or "unknown", [0] * days)[index[row["day"]]] += row["count"]
    return [day.isoformat() for day in dates], dict(sorted(series.items(), key=lambda item: -sum(item[1])))


def generation_figures(
    *, tenant: Tenant | None, periods: dict[str, tuple[datetime, datetime]], now: datetime, chart_days: int
) -> GenerationFigures:
    failure_days, failure_series = failures_series(tenant=tenant, now=now, days=chart_days)
    return GenerationFigures(
        stats=generation_stats(tenant=tenant, periods=periods),
        failures=failures_by_code(tenant=tenant, periods=periods),
        failure_days=failure_days,
        failure_series=failure_series,
    )
