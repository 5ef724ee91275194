"""The dashboard's generation figures over the daily rollup equal the generations table's own: counts and failures
exactly, percentiles within the histograms' bound (5 %, or 1 ms under 1 ms), today alone exactly; a generation still
open when its day was rolled up counts as it is now."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import tenant_create
from billing.periods import day_start
from generations.models import DailyGenerationStats, DailyGenerationStatsDay, Generation
from generations.selectors.metrics import generation_figures
from generations.selectors.rollup import duration_bucket, histogram_percentile

pytestmark = pytest.mark.django_db

S = Generation.Status
FINAL = (S.SUCCEEDED, S.FAILED, S.CANCELED)


def _exact_percentile(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont."""
    if not values:
        return None
    values = sorted(values)
    position = fraction * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _exact(*, tenant: Tenant | None, start: datetime, end: datetime) -> dict:
    rows = Generation.objects.filter(created_at__gte=start, created_at__lt=end)
    if tenant is not None:
        rows = rows.filter(tenant=tenant)
    rows = list(rows)
    waits = [(g.started_at - g.created_at).total_seconds() for g in rows if g.started_at]
    latencies = [(g.finished_at - g.created_at).total_seconds() for g in rows if g.status == S.SUCCEEDED and g.finished_at]
    failures: dict[str, int] = {}
    for g in rows:
        if g.status == S.FAILED:
            failures[g.error_code or "unknown"] = failures.get(g.error_code or "unknown", 0) + 1
    return {
        "requests": len(rows),
        "finished": sum(1 for g in rows if g.status in FINAL),
        "failed": sum(1 for g in rows if g.status == S.FAILED),
        "percentiles": [_exact_percentile(waits, 0.5), _exact_percentile(waits, 0.95),
                        _exact_percentile(latencies, 0.5), _exact_percentile(latencies, 0.95)],
        "failures": sorted(failures.items(), key=lambda item: (-item[1], item[0])),
    }


def _within_bound(approximate: float | None, exact: float | None) -> bool:
    if exact is None:
        return approximate is None
    return abs(approximate - exact) <= max(0.05 * abs(exact), 0.001) + 0.0005  # + the figures' 3-decimal rounding


def _seed(now: datetime, tenants: list[Tenant]) -> list[Generation]:
    """Generations over the last 9 days and today, durations from 0.2 ms to 20 minutes, every status; a few of the
    closed days' generations still open."""
    rng = random.Random(22)
    today = day_start(now)
    rows = []
    for days_ago in range(9, -1, -1):
        for i in range(60):
            created = today - timedelta(days=days_ago) + timedelta(seconds=rng.uniform(0, 86_399 if days_ago else
                                                                                         (now - today).total_seconds() * 0.9))
            status = rng.choices([S.SUCCEEDED, S.FAILED, S.CANCELED, S.QUEUED, S.RUNNING], [80, 10, 4, 3, 3])[0]
            wait = 10 ** rng.uniform(-3.7, 3)
            started = None if status == S.QUEUED or (status == S.CANCELED and i % 2) else created + timedelta(seconds=wait)
            finished = (started or created) + timedelta(seconds=10 ** rng.uniform(-1, 3)) if status in FINAL else None
            rows.append(Generation(
                tenant=tenants[i % len(tenants)], model_id="openai/gpt-image-2", operation="generate", prompt="p", n=1,
                status=status, error_code=rng.choice(["upstream_error", "timeout", "", "content_policy"])
                if status == S.FAILED else "", created_at=created, started_at=started, finished_at=finished,
            ))
    created = [row.created_at for row in rows]
    Generation.objects.bulk_create(rows)  # stamps created_at (auto_now_add): the chosen times are put back
    for row, moment in zip(rows, created, strict=True):
        row.created_at = moment
    Generation.objects.bulk_update(rows, ["created_at"])
    return rows


def _periods(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    today = day_start(now)
    return {"today": (today, now), "7d": (today - timedelta(days=6), now), "10d": (today - timedelta(days=9), now)}


def _assert_matches(tenant: Tenant | None, now: datetime) -> None:
    periods = _periods(now)
    figures = generation_figures(tenant=tenant, periods=periods, now=now, chart_days=10)
    stats, failures = figures.stats, figures.failures
    for name, (start, end) in periods.items():
        exact = _exact(tenant=tenant, start=start, end=end)
        got = stats[name]
        assert (got.requests, got.finished, got.failed) == (exact["requests"], exact["finished"], exact["failed"])
        percentiles = [got.queue_wait_p50, got.queue_wait_p95, got.latency_p50, got.latency_p95]
        if name == "today":  # read live: exact
            assert percentiles == [None if p is None else round(p, 3) for p in exact["percentiles"]], name
        else:
            assert all(_within_bound(a, e) for a, e in zip(percentiles, exact["percentiles"], strict=True)), (
                name, percentiles, exact["percentiles"])
        assert failures[name] == exact["failures"], name
    days, series = figures.failure_days, figures.failure_series
    assert len(days) == 10
    for i, day in enumerate(days):
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        exact = dict(_exact(tenant=tenant, start=start, end=min(start + timedelta(days=1), now))["failures"])
        assert {code: values[i] for code, values in series.items() if values[i]} == exact, day


def test_figures_over_the_rollup_match_the_generations_table() -> None:
    now = timezone.now()
    if now - day_start(now) < timedelta(hours=1, minutes=5):
        now = day_start(now) + timedelta(hours=2)  # yesterday closed: the rollup has 9 days to write
    tenants = [tenant_create(slug=f"t{i}", name=f"T{i}") for i in range(3)]
    rows = _seed(now, tenants)

    for tenant in (None, tenants[1]):
        _assert_matches(tenant, now)

    assert DailyGenerationStatsDay.objects.count() >= 9 and DailyGenerationStats.objects.exists()
    open_ids = {pk for ids in DailyGenerationStatsDay.objects.values_list("open_ids", flat=True) for pk in ids}
    assert open_ids and open_ids == {
        row.pk for row in rows if row.status not in FINAL and row.created_at < day_start(now)
    }
    written = DailyGenerationStats.objects.count()

    # The generations that were open when their day was rolled up finish: the figures follow them.
    Generation.objects.filter(pk__in=open_ids).update(
        status=S.FAILED, error_code="late_failure", finished_at=now - timedelta(minutes=1)
    )
    for tenant in (None, tenants[1]):
        _assert_matches(tenant, now)
    assert DailyGenerationStats.objects.count() == written  # a closed day is rolled up once


@pytest.mark.parametrize("seconds", [0.0, 0.0004, 0.001, 0.00123, 0.5, 1.0, 7.3, 59.9, 600.0, 86_400.0])
def test_a_bucket_reads_back_within_five_percent_or_a_millisecond(seconds: float) -> None:
    from collections import Counter

    value = histogram_percentile(Counter({duration_bucket(seconds): 1}), 0.5)
    assert abs(value - seconds) <= max(0.049 * seconds, 0.001)


@pytest.mark.postgres
def test_postgresql_sums_a_day_as_python_does() -> None:
    from generations.selectors import rollup

    now = timezone.now()
    _seed(now, [tenant_create(slug=f"t{i}", name=f"T{i}") for i in range(3)])
    low, high = day_start(now) - timedelta(days=9), day_start(now) + timedelta(days=1)

    in_sql, open_in_sql = rollup._summed_in_sql(low=low, high=high)
    in_python, open_in_python = rollup._summed_in_python(low=low, high=high)

    assert {day: sorted(ids) for day, ids in open_in_sql.items()} == {day: sorted(ids) for day, ids in open_in_python.items()}
    assert set(in_sql) == set(in_python)
    for key, python in in_python.items():
        sql = in_sql[key]
        assert (sql.requests, sql.finished, sql.failed, sql.failures) == (
            python.requests, python.finished, python.failed, python.failures)
        assert (sql.queue_wait, sql.latency) == (python.queue_wait, python.latency), key
