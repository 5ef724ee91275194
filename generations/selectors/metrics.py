"""Operational figures of generations for the staff dashboard: requests, failures by code, queue wait and
end-to-end latency percentiles, queue depth and calls in flight. Money figures are billing's
(`billing.selectors.dashboard`); this module reads generations only.

Latency: queue wait = started_at − created_at (last attempt's start), end to end = finished_at − created_at of
succeeded generations. On PostgreSQL the percentiles are `percentile_cont` in the one query that counts; on
SQLite (tests, a newcomer's `make run`) the same interpolated percentiles are computed in Python.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, QuerySet
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


_STATS_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'canceled')),
       count(*) FILTER (WHERE status = 'failed'),
       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))
           FILTER (WHERE started_at IS NOT NULL),
       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))
           FILTER (WHERE status = 'succeeded' AND finished_at IS NOT NULL)
FROM generations_generation
WHERE created_at >= %s AND created_at < %s {tenant}
"""


def generation_stats(*, tenant: Tenant | None, start: datetime, end: datetime) -> RequestStats:
    """Requests created in the period and how they went."""
    if connection.vendor == "postgresql":
        params: list[object] = [start, end]
        if tenant is not None:
            params.append(tenant.pk)
        with connection.cursor() as cursor:
            cursor.execute(_STATS_SQL.format(tenant="AND tenant_id = %s" if tenant else ""), params)
            requests, finished, failed, waits, latencies = cursor.fetchone()
        waits, latencies = waits or [None, None], latencies or [None, None]
        return RequestStats(requests, finished, failed, *_rounded(waits), *_rounded(latencies))
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


def failures_by_code(*, tenant: Tenant | None, start: datetime, end: datetime) -> list[tuple[str, int]]:
    """Failed generations of the period per error code, most frequent first."""
    rows = (
        _generations(tenant=tenant, start=start, end=end)
        .filter(status=Status.FAILED)
        .values("error_code")
        .annotate(count=Count("id"))
        .order_by("-count", "error_code")
    )
    return [(row["error_code"] or "unknown", row["count"]) for row in rows]


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
