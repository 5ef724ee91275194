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
from datetime import datetime, timedelta

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


@dataclass(frozen=True)
class GenerationFigures:
    """The dashboard's generation figures: each period's request stats and failures by code (most frequent first),
    and failed generations per UTC day and error code over the chart's days."""

    stats: dict[str, RequestStats]
    failures: dict[str, list[tuple[str, int]]]
    failure_days: list[str]
    failure_series: dict[str, list[int]]


def generation_figures(
    *, tenant: Tenant | None, periods: dict[str, tuple[datetime, datetime]], now: datetime, chart_days: int
) -> GenerationFigures:
    """Requests created in each period and how they went (the periods may overlap: today, 7 days, month to date;
    each starts at a UTC midnight and ends now), from one read of the days of the periods and the chart."""
    for start, end in periods.values():
        if start != start.replace(hour=0, minute=0, second=0, microsecond=0) or end != now:
            raise ValueError(f"A period starts at a UTC midnight and ends now, not {start.isoformat()}.")
    chart_start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=chart_days - 1)
    days = generation_days(
        tenant=tenant, start=min(chart_start, *(start for start, _end in periods.values())), now=now
    )
    by_period = {name: [figures for day, figures in days.items() if day >= start.date()] for name, (start, _end) in
                 periods.items()}
    failure_days = sorted(day for day in days if day >= chart_start.date())
    series: dict[str, list[int]] = {}
    for i, day in enumerate(failure_days):
        for code, count in days[day].failures.items():
            series.setdefault(code, [0] * chart_days)[i] += count
    return GenerationFigures(
        stats={name: _stats(period_days) for name, period_days in by_period.items()},
        failures={name: _failures(period_days) for name, period_days in by_period.items()},
        failure_days=[day.isoformat() for day in failure_days],
        failure_series=dict(sorted(series.items(), key=lambda item: -sum(item[1]))),
    )


def _stats(days: list[DayFigures]) -> RequestStats:
    if len(days) == 1 and days[0].percentiles is not None:  # today, read live: exact
        percentiles = days[0].percentiles
    else:
        waits = sum((day.queue_wait for day in days), Counter())
        latencies = sum((day.latency for day in days), Counter())
        percentiles = [
            histogram_percentile(histogram, fraction) for histogram in (waits, latencies) for fraction in (0.5, 0.95)
        ]
    return RequestStats(
        sum(day.requests for day in days),
        sum(day.finished for day in days),
        sum(day.failed for day in days),
        *(None if value is None else round(value, 3) for value in percentiles),
    )


def _failures(days: list[DayFigures]) -> list[tuple[str, int]]:
    codes = sum((day.failures for day in days), Counter())
    return sorted(codes.items(), key=lambda item: (-item[1], item[0]))


def queue_now(*, tenant: Tenant | None) -> tuple[int, int]:
    """(queued, running) right now: queue depth and upstream calls in flight. Two counts, each on its partial
    index (gen_claimable, gen_running_lease / gen_tenant_running), rather than one scan of every status."""
    queued = Generation.objects.filter(status=Status.QUEUED)
    running = Generation.objects.filter(status=Status.RUNNING)
    if tenant is not None:
        queued, running = queued.filter(tenant=tenant), running.filter(tenant=tenant)
    return queued.count(), running.count()
