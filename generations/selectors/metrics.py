"""Operational figures of generations for the staff dashboard: requests, failures by code, queue wait and
end-to-end latency percentiles, queue depth and calls in flight. Money figures are billing's
(`billing.selectors.dashboard`); this module reads generations only.

Latency: queue wait = started_at − created_at (last attempt's start), end to end = finished_at − created_at of
succeeded generations. On PostgreSQL the percentiles are `percentile_cont` in the one query that counts; on
SQLite (tests, a newcomer's `make run`) the same interpolated percentiles are computed in Python.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate

from accounts.models import Tenant
from generations.models import Generation

Status = Generation.Status
FINAL = [Status.SUCCEEDED, Status.FAILED, Status.CANCELED]


@dataclass(frozen=True)
class RequestStats:
    requests: int
    finished: int
    failed: int
    queue_wait_p50: float | None  # seconds
    queue_wait_p95: float | None
    latency_p50: float | None
    latency_p95: float | None

    @property
    def failure_percent(self) -> float | None:
        return round(100 * self.failed / self.finished, 2) if self.finished else None


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
    if connection.vendor != "postgresql":
        return {name: _stats_in_python(tenant=tenant, start=start, end=end) for name, (start, end) in periods.items()}
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


def _stats_in_python(*, tenant: Tenant | None, start: datetime, end: datetime) -> RequestStats:
    rows = list(
        _generations(tenant=tenant, start=start, end=end).values_list("status", "created_at", "started_at", "finished_at")
    )
    waits = sorted((started - created).total_seconds() for _s, created, started, _f in rows if started)
    latencies = sorted(
        (finished - created).total_seconds()
        for status, created, _st, finished in rows
        if status == Status.SUCCEEDED and finished
    )
    return RequestStats(
        requests=len(rows),
        finished=sum(1 for row in rows if row[0] in FINAL),
        failed=sum(1 for row in rows if row[0] == Status.FAILED),
        queue_wait_p50=_percentile(waits, 0.5),
        queue_wait_p95=_percentile(waits, 0.95),
        latency_p50=_percentile(latencies, 0.5),
        latency_p95=_percentile(latencies, 0.95),
    )


def _rounded(values: list[float | None]) -> list[float | None]:
    return [None if value is None else round(float(value), 3) for value in values]


def _percentile(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's `percentile_cont`: linear interpolation between the closest ranks."""
    if not values:
        return None
    position = fraction * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return round(values[low] + (values[high] - values[low]) * (position - low), 3)


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


def queue_now(*, tenant: Tenant | None) -> tuple[int, int]:
    """(queued, running) right now: queue depth and upstream calls in flight. Two counts, each on its partial
    index (gen_claimable, gen_running_lease / gen_tenant_running), rather than one scan of every status."""
    queued = Generation.objects.filter(status=Status.QUEUED)
    running = Generation.objects.filter(status=Status.RUNNING)
    if tenant is not None:
        queued, running = queued.filter(tenant=tenant), running.filter(tenant=tenant)
    return queued.count(), running.count()
