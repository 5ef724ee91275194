"""Operational figures of generations for the staff dashboard: requests, failures by code, queue wait and
end-to-end latency percentiles, queue depth and calls in flight. Money figures are billing's
(`billing.selectors.dashboard`); this module reads generations only.

Latency: queue wait = started_at − created_at (last attempt's start), end to end = finished_at − created_at of
succeeded generations, of the generations created in the period. The figures are summed per UTC day by
`generations.selectors.rollup`: closed days from the daily rollup (percentiles within 5 % of the exact ones),
today read live (exact when the period is today alone). Periods therefore start at a UTC midnight.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from accounts.models import Tenant
from generations.models import Generation
from generations.selectors.rollup import DayFigures, generation_days, histogram_percentile

Status = Generation.Status


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


def _days_of_periods(
    *, tenant: Tenant | None, periods: dict[str, tuple[datetime, datetime]]
) -> dict[str, list[DayFigures]]:
    """Each period's days, from one read of the days of their union (the periods end now)."""
    for start, _end in periods.values():
        if start != start.replace(hour=0, minute=0, second=0, microsecond=0):
            raise ValueError(f"A period starts at a UTC midnight, not {start.isoformat()}.")
    now = max(end for _start, end in periods.values())
    days = generation_days(tenant=tenant, start=min(start for start, _end in periods.values()), now=now)
    return {
        name: [figures for day, figures in days.items() if start.date() <= day and _midnight_of(day) < end]
        for name, (start, end) in periods.items()
    }


def _midnight_of(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def generation_stats(
    *, tenant: Tenant | None, periods: dict[str, tuple[datetime, datetime]]
) -> dict[str, RequestStats]:
    """Requests created in each period and how they went (the periods may overlap: today, 7 days, month to
    date; each starts at a UTC midnight and they end at the same moment, now)."""
    return {name: _stats(days) for name, days in _days_of_periods(tenant=tenant, periods=periods).items()}


def _stats(days: list[DayFigures]) -> RequestStats:
    if all(day.exact for day in days):
        waits = sorted(wait for day in days for wait in day.waits)
        latencies = sorted(latency for day in days for latency in day.latencies)
        percentiles = [_percentile(waits, 0.5), _percentile(waits, 0.95), _percentile(latencies, 0.5),
                       _percentile(latencies, 0.95)]
    else:
        waits = sum((day.queue_wait for day in days), Counter())
        latencies = sum((day.latency for day in days), Counter())
        percentiles = [
            _rounded(histogram_percentile(histogram, fraction))
            for histogram in (waits, latencies)
            for fraction in (0.5, 0.95)
        ]
    return RequestStats(
        sum(day.requests for day in days), sum(day.finished for day in days), sum(day.failed for day in days),
        *percentiles,
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


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
    """Failed generations of each period per error code, most frequent first."""
    result = {}
    for name, days in _days_of_periods(tenant=tenant, periods=periods).items():
        codes = sum((day.failures for day in days), Counter())
        result[name] = sorted(codes.items(), key=lambda item: (-item[1], item[0]))
    return result


def failures_series(*, tenant: Tenant | None, now: datetime, days: int) -> tuple[list[str], dict[str, list[int]]]:
    """Failed generations per UTC day and error code over the last `days` days."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    figures = generation_days(tenant=tenant, start=start, now=now)
    dates = sorted(figures)[-days:]
    series: dict[str, list[int]] = {}
    for i, day in enumerate(dates):
        for code, count in figures[day].failures.items():
            series.setdefault(code, [0] * days)[i] += count
    return [day.isoformat() for day in dates], dict(sorted(series.items(), key=lambda item: -sum(item[1])))


def queue_now(*, tenant: Tenant | None) -> tuple[int, int]:
    """(queued, running) right now: queue depth and upstream calls in flight. Two counts, each on its partial
    index (gen_claimable, gen_running_lease / gen_tenant_running), rather than one scan of every status."""
    queued = Generation.objects.filter(status=Status.QUEUED)
    running = Generation.objects.filter(status=Status.RUNNING)
    if tenant is not None:
        queued, running = queued.filter(tenant=tenant), running.filter(tenant=tenant)
    return queued.count(), running.count()
