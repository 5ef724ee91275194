"""The daily rollup of generation figures behind the dashboard (`DailyGenerationStats`): closed UTC days read from a
few thousand rollup rows, the rest of a period from the generations table, per day.

Like billing's `DailyUsage` (`billing.selectors.rollup`), a read-through cache over the same closed days
(`rollup_span`: a day closes an hour after it ends): the first read of a closed day writes it, under an advisory
lock on PostgreSQL. Unlike ledger rows, a generation changes after its day closes until it is final, so a day's rows
sum only the generations that were final when it was written; the others (`DailyGenerationStatsDay.open_ids`, a
handful: queued or running past midnight) are read by primary key as they are now and added, so the figures stay
those of every generation created that day.

Durations are kept as log-scale histograms: bucket 0 holds everything under 1 ms (negative clock skew included),
bucket k ≥ 1 holds [1 ms · 1.1^(k-1), 1 ms · 1.1^k), 10 % wide, read back as its geometric middle. A percentile
merged from histograms is therefore within 5 % (√1.1 − 1 = 4.9 %) of the exact `percentile_cont`, or within 1 ms
for durations under 1 ms; today alone, read live, is exact.
"""

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet

from accounts.models import Tenant
from billing.selectors.rollup import rollup_span
from generations.models import DailyGenerationStats, DailyGenerationStatsDay, Generation

Status = Generation.Status
FINAL = frozenset([Status.SUCCEEDED, Status.FAILED, Status.CANCELED])
BUCKET_GROWTH = 1.1
BUCKET_FLOOR_SECONDS = 0.001
_LOG_GROWTH = math.log(BUCKET_GROWTH)
_LOCK_ID = 0x6E_57_A7  # pg_advisory_xact_lock key of the rollup writers
_COLUMNS = ("pk", "tenant_id", "status", "error_code", "created_at", "started_at", "finished_at")


def duration_bucket(seconds: float) -> int:
    if seconds < BUCKET_FLOOR_SECONDS:
        return 0
    return 1 + int(math.log(seconds / BUCKET_FLOOR_SECONDS) / _LOG_GROWTH)


def bucket_seconds(bucket: int) -> float:
    """A bucket's value: 0 for bucket 0, else the geometric middle of its bounds."""
    return 0.0 if bucket == 0 else BUCKET_FLOOR_SECONDS * BUCKET_GROWTH ** (bucket - 0.5)


def percentile_exact(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's `percentile_cont` of sorted values: linear interpolation between the closest ranks."""
    if not values:
        return None
    position = fraction * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def histogram_percentile(histogram: Counter[int], fraction: float) -> float | None:
    """`percentile_cont` over the bucket values: linear interpolation between the two closest ranks."""
    total = sum(histogram.values())
    if not total:
        return None
    position = fraction * (total - 1)
    low_rank = int(position)
    wanted = (low_rank, min(low_rank + 1, total - 1))
    values: list[float] = []
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        while len(values) < 2 and wanted[len(values)] < seen:
            values.append(bucket_seconds(bucket))
        if len(values) == 2:
            break
    low, high = values
    return low + (high - low) * (position - low_rank)


@dataclass
class DayFigures:
    """One UTC day's generations (all tenants or one). A day read live whole (today) also has its exact
    `percentiles` (queue wait p50, p95, end to end p50, p95); a closed day only its histograms."""

    requests: int = 0
    finished: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    queue_wait: Counter[int] = field(default_factory=Counter)
    latency: Counter[int] = field(default_factory=Counter)
    percentiles: list[float | None] | None = None
    waits: list[float] = field(default_factory=list)  # the durations added one by one, for `percentiles`
    latencies: list[float] = field(default_factory=list)

    def add_generation(self, *, status: str, error_code: str, created: datetime, started: datetime | None,
                       finished: datetime | None) -> None:
        self.add_durations(
            status=status,
            error_code=error_code,
            wait=None if started is None else (started - created).total_seconds(),
            latency=None if finished is None else (finished - created).total_seconds(),
        )

    def add_durations(self, *, status: str, error_code: str, wait: float | None, latency: float | None) -> None:
        """One generation: its queue wait (None until started) and its time to finish (None until finished)."""
        self.requests += 1
        if status in FINAL:
            self.finished += 1
        if status == Status.FAILED:
            self.failed += 1
            self.failures[error_code or "unknown"] += 1
        if wait is not None:
            self.queue_wait[duration_bucket(wait)] += 1
            self.waits.append(wait)
        if status == Status.SUCCEEDED and latency is not None:
            self.latency[duration_bucket(latency)] += 1
            self.latencies.append(latency)

    def add_count(self, *, status: str, error_code: str, count: int) -> None:
        """`count` generations of one status and error code (their durations are added apart)."""
        self.requests += count
        if status in FINAL:
            self.finished += count
        if status == Status.FAILED:
            self.failed += count
            self.failures[error_code or "unknown"] += count

    def add_figures(self, other: "DayFigures") -> None:
        self.requests += other.requests
        self.finished += other.finished
        self.failed += other.failed
        self.failures.update(other.failures)
        self.queue_wait.update(other.queue_wait)
        self.latency.update(other.latency)

    def add_rollup(self, row: DailyGenerationStats) -> None:
        self.requests += row.requests
        self.finished += row.finished
        self.failed += row.failed
        self.failures.update(row.failures)
        self.queue_wait.update({int(bucket): count for bucket, count in row.queue_wait.items()})
        self.latency.update({int(bucket): count for bucket, count in row.latency.items()})


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def daily_generation_stats_ensure(*, first: datetime, last: datetime) -> None:
    """Write the rollup of every day in [first, last) that has none yet (one pass over those days' generations)."""
    wanted = [(first + timedelta(days=i)).date() for i in range((last - first).days)]
    if not wanted:
        return
    days = DailyGenerationStatsDay.objects.filter(day__gte=wanted[0], day__lte=wanted[-1])
    if set(days.values_list("day", flat=True)) >= set(wanted):
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
        done = set(days.values_list("day", flat=True))
        missing = [day for day in wanted if day not in done]
        if not missing:
            return
        low, high = _midnight(missing[0]), _midnight(missing[-1]) + timedelta(days=1)
        summed = _summed_in_sql if connection.vendor == "postgresql" else _summed_in_python
        figures, open_ids = summed(low=low, high=high)
        keep = set(missing)
        figures = {key: day_figures for key, day_figures in figures.items() if key[0] in keep}
        DailyGenerationStats.objects.bulk_create(
            [
                DailyGenerationStats(
                    day=day,
                    tenant_id=tenant_id,
                    requests=day_figures.requests,
                    finished=day_figures.finished,
                    failed=day_figures.failed,
                    failures=dict(day_figures.failures),
                    queue_wait={str(bucket): count for bucket, count in day_figures.queue_wait.items()},
                    latency={str(bucket): count for bucket, count in day_figures.latency.items()},
                )
                for (day, tenant_id), day_figures in figures.items()
            ],
            batch_size=1000,
        )
        DailyGenerationStatsDay.objects.bulk_create(
            [DailyGenerationStatsDay(day=day, open_ids=sorted(open_ids.get(day, []))) for day in missing]
        )


_Summed = tuple[dict[tuple[date, int], DayFigures], dict[date, list[int]]]


def _summed_in_python(*, low: datetime, high: datetime) -> _Summed:
    """Each (day, tenant)'s figures of the final generations created in [low, high), and each day's open ones."""
    figures: dict[tuple[date, int], DayFigures] = {}
    open_ids: dict[date, list[int]] = {}
    rows = Generation.objects.filter(created_at__gte=low, created_at__lt=high).values_list(*_COLUMNS)
    for pk, tenant_id, status, error_code, created, started, finished in rows.iterator(chunk_size=5000):
        day = _utc_day(created)
        if status not in FINAL:
            open_ids.setdefault(day, []).append(pk)
            continue
        figures.setdefault((day, tenant_id), DayFigures()).add_generation(
            status=status, error_code=error_code, created=created, started=started, finished=finished
        )
    return figures, open_ids


_DAY = "(created_at AT TIME ZONE 'UTC')::date"
_FINAL_SQL = "status IN ('succeeded', 'failed', 'canceled')"


def _bucket_sql(seconds: str) -> str:
    """`duration_bucket` in SQL."""
    return (
        f"CASE WHEN {seconds} < {BUCKET_FLOOR_SECONDS} THEN 0"
        f" ELSE 1 + floor(ln({seconds} / {BUCKET_FLOOR_SECONDS}) / ln({BUCKET_GROWTH}))::int END"
    )


_WAIT = "EXTRACT(EPOCH FROM started_at - created_at)::float8"  # numeric (the default) makes ln() several times slower
_LATENCY = "EXTRACT(EPOCH FROM finished_at - created_at)::float8"
_HAS_WAIT = "started_at IS NOT NULL"
_HAS_LATENCY = "status = 'succeeded' AND finished_at IS NOT NULL"


def _summed_in_sql(*, low: datetime, high: datetime, tenant_id: int | None = None, final_only: bool = True) -> _Summed:
    """`_summed_in_python` as GROUP BYs in PostgreSQL: a month of a million generations is summed by the database
    in seconds instead of being carried into Python row by row. With `final_only=False`, every generation is
    summed (as it is now) and none is listed open."""
    table = "generations_generation"
    where = "created_at >= %(low)s AND created_at < %(high)s" + (" AND tenant_id = %(tenant)s" if tenant_id is not None else "")
    final = f" AND {_FINAL_SQL}" if final_only else ""
    params = {"low": low, "high": high, "tenant": tenant_id}
    figures: dict[tuple[date, int], DayFigures] = {}
    open_ids: dict[date, list[int]] = {}
    with connection.cursor() as cursor:
        if final_only:
            cursor.execute(f"SELECT {_DAY}, id FROM {table} WHERE {where} AND NOT {_FINAL_SQL}", params)
            for day, pk in cursor.fetchall():
                open_ids.setdefault(day, []).append(pk)
        # One scan, three groupings: per status and error code, per queue-wait bucket, per latency bucket (a
        # grouping's own columns are the non-NULL ones; `GROUPING()` says which grouping a row belongs to).
        cursor.execute(
            f"""SELECT day, tenant_id, status, error_code, wait, latency, GROUPING(status, wait, latency), count(*)
            FROM (SELECT {_DAY} AS day, tenant_id, status, error_code,
                         CASE WHEN {_HAS_WAIT} THEN {_bucket_sql(_WAIT)} END AS wait,
                         CASE WHEN {_HAS_LATENCY} THEN {_bucket_sql(_LATENCY)} END AS latency
                  FROM {table} WHERE {where}{final}) AS generations
            GROUP BY GROUPING SETS ((day, tenant_id, status, error_code), (day, tenant_id, wait),
                                    (day, tenant_id, latency))""",
            params,
        )
        for day, tenant, status, error_code, wait, latency, grouping, count in cursor.fetchall():
            day_figures = figures.setdefault((day, tenant), DayFigures())
            if grouping == 0b011:  # grouped by status and error code
                day_figures.add_count(status=status, error_code=error_code, count=count)
            elif grouping == 0b101 and wait is not None:  # by queue-wait bucket (NULL: never started)
                day_figures.queue_wait[wait] += count
            elif grouping == 0b110 and latency is not None:
                day_figures.latency[latency] += count
    return figures, open_ids


def _add_live_in_sql(figures: dict[date, DayFigures], *, tenant_id: int | None, low: datetime, high: datetime) -> None:
    """The generations created in [low, high) summed by PostgreSQL, and each day's exact percentiles
    (`percentile_cont`: a day is some ten thousand durations to sort)."""
    summed, _open = _summed_in_sql(low=low, high=high, tenant_id=tenant_id, final_only=False)
    for (day, _tenant), day_figures in summed.items():
        if day in figures:
            figures[day].add_figures(day_figures)
    where = "created_at >= %(low)s AND created_at < %(high)s" + (" AND tenant_id = %(tenant)s" if tenant_id is not None else "")
    percentiles = "percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY {}) FILTER (WHERE {})"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_DAY}, {percentiles.format(_WAIT, _HAS_WAIT)}, {percentiles.format(_LATENCY, _HAS_LATENCY)}"
            f" FROM generations_generation WHERE {where} GROUP BY 1",
            {"low": low, "high": high, "tenant": tenant_id},
        )
        for day, waits, latencies in cursor.fetchall():
            if day in figures:
                figures[day].percentiles = [
                    None if value is None else float(value) for value in [*(waits or [None] * 2), *(latencies or [None] * 2)]
                ]


def generation_days(*, tenant: Tenant | None, start: datetime, now: datetime) -> dict[date, DayFigures]:
    """Every UTC day from `start`'s day to `now`'s: closed days from the rollup (written first if missing) plus
    their generations that were open then, the rest read live and exact."""
    first_day = _utc_day(start)
    figures = {first_day + timedelta(days=i): DayFigures() for i in range((_utc_day(now) - first_day).days + 1)}
    live_from = _midnight(first_day)
    span = rollup_span(start=live_from, end=now, now=now)
    if span is not None:
        daily_generation_stats_ensure(first=span[0], last=span[1])
        rolled = DailyGenerationStats.objects.filter(day__gte=span[0].date(), day__lt=span[1].date())
        if tenant is not None:
            rolled = rolled.filter(tenant=tenant)
        for row in rolled.only(
            "day", "requests", "finished", "failed", "failures", "queue_wait", "latency"
        ).order_by():
            figures[row.day].add_rollup(row)
        open_ids = [
            pk
            for ids in DailyGenerationStatsDay.objects.filter(
                day__gte=span[0].date(), day__lt=span[1].date()
            ).values_list("open_ids", flat=True)
            for pk in ids
        ]
        if open_ids:
            _add_rows(figures, _open_rows(tenant=tenant, ids=open_ids))
        live_from = span[1]
    if connection.vendor == "postgresql":
        _add_live_in_sql(figures, tenant_id=tenant.pk if tenant else None, low=live_from, high=now)
        return figures
    # SQLite (tests, a newcomer's `make run`: few rows): every live row through Python.
    live = _generations(tenant=tenant).filter(created_at__gte=live_from, created_at__lt=now)
    _add_rows(figures, live.values_list(*_COLUMNS[2:]).iterator(chunk_size=5000))
    for day, day_figures in figures.items():
        if day >= live_from.date():
            waits, latencies = sorted(day_figures.waits), sorted(day_figures.latencies)
            day_figures.percentiles = [percentile_exact(values, fraction) for values in (waits, latencies)
                                       for fraction in (0.5, 0.95)]
    return figures


def _generations(*, tenant: Tenant | None) -> QuerySet[Generation]:
    rows = Generation.objects.all()
    return rows if tenant is None else rows.filter(tenant=tenant)


def _open_rows(*, tenant: Tenant | None, ids: list[int]) -> Iterable[tuple[Any, ...]]:
    """The generations that were open when their day was rolled up, as they are now."""
    if connection.vendor != "postgresql":
        return _generations(tenant=tenant).filter(pk__in=ids).values_list(*_COLUMNS[2:])
    # The ids as one array parameter: thousands of literals in an IN list cost more to plan than the lookup.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(_COLUMNS[2:])} FROM generations_generation WHERE id = ANY(%s)"
            + (" AND tenant_id = %s" if tenant else ""),
            [ids, tenant.pk] if tenant else [ids],
        )
        return cursor.fetchall()


def _add_rows(figures: dict[date, DayFigures], rows: Iterable[tuple[Any, ...]]) -> None:
    for status, error_code, created, started, finished in rows:
        day = figures.get(_utc_day(created))
        if day is not None:
            day.add_generation(status=status, error_code=error_code, created=created, started=started,
                               finished=finished)
