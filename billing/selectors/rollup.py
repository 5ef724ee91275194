"""The daily usage rollup behind the billing report (`DailyUsage`): closed UTC days read from a few thousand
rollup rows, the rest of a period from the ledger, merged into the same groups.

A read-through cache rather than a service: the first read of a closed day that has no rollup yet writes it (one
GROUP BY over that day's ledger rows, under an advisory lock on PostgreSQL so two readers do not both write it);
the rows are derived only from the append-only ledger and never change. A day counts as closed an hour after it
ends (`ROLLUP_LAG`), so a settlement committed just after midnight still lands in its own day's sums.
"""

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate, TruncMonth

from billing.models import DailyUsage, DailyUsageDay, LedgerEntry
from billing.periods import day_start

Kind = LedgerEntry.Kind
ROLLUP_LAG = timedelta(hours=1)
_KEY = ("day", "tenant_id", "api_key_id", "model_id", "quality", "size")
_LOCK_ID = 0x5D_A1_1A  # pg_advisory_xact_lock key of the rollup writers


def rollup_span(*, start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime] | None:
    """The whole closed days inside [start, end), as datetimes, or None when there are none."""
    first = day_start(start)
    if first < start:
        first += timedelta(days=1)
    last = min(day_start(end), day_start(now - ROLLUP_LAG))
    return (first, last) if first < last else None


def _days(first: datetime, last: datetime) -> list[date]:
    return [(first + timedelta(days=i)).date() for i in range((last - first).days)]


def actual_sums() -> dict[str, Any]:
    """Over ledger rows: the captures whose actual upstream cost is known — their images, actual cost, and
    estimate (`cost_micros`), so the two compare over the same calls."""
    known = Q(kind=Kind.CAPTURE, upstream_cost_actual_micros__isnull=False)
    return {
        "actual_images": Coalesce(Sum("images", filter=known), 0),
        "actual_cost": Coalesce(Sum("upstream_cost_actual_micros", filter=known), 0),
        "actual_estimate": Coalesce(Sum("cost_micros", filter=known), 0),
    }


def daily_usage_ensure(*, first: datetime, last: datetime) -> None:
    """Write the rollup of every day in [first, last) that has none yet."""
    wanted = _days(first, last)
    if set(DailyUsageDay.objects.filter(day__gte=wanted[0], day__lte=wanted[-1]).values_list("day", flat=True)) >= set(
        wanted
    ):
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
        done = set(DailyUsageDay.objects.filter(day__gte=wanted[0], day__lte=wanted[-1]).values_list("day", flat=True))
        missing = [day for day in wanted if day not in done]
        if not missing:
            return
        low = datetime.combine(missing[0], datetime.min.time(), tzinfo=first.tzinfo)
        high = datetime.combine(missing[-1], datetime.min.time(), tzinfo=first.tzinfo) + timedelta(days=1)
        captured = Q(kind=Kind.CAPTURE)
        rows = (
            LedgerEntry.objects.filter(kind__in=[Kind.CAPTURE, Kind.RELEASE], created_at__gte=low, created_at__lt=high)
            .annotate(day=TruncDate("created_at", tzinfo=first.tzinfo))
            .values(*_KEY)
            .annotate(
                n_requests=Count("id", filter=captured),
                n_images=Coalesce(Sum("images", filter=captured), 0),
                price=Coalesce(Sum("amount_micros", filter=captured), 0),
                cost=Coalesce(Sum("cost_micros", filter=captured), 0),
                refunded_cost=Coalesce(Sum("cost_micros", filter=Q(kind=Kind.RELEASE)), 0),
                **actual_sums(),
            )
            .order_by()
        )
        keep = set(missing)
        DailyUsage.objects.bulk_create(
            [
                DailyUsage(
                    **{name: row[name] for name in _KEY},
                    requests=row["n_requests"],
                    images=row["n_images"],
                    price_micros=row["price"],
                    cost_micros=row["cost"],
                    refunded_cost_micros=row["refunded_cost"],
                    actual_images=row["actual_images"],
                    actual_cost_micros=row["actual_cost"],
                    actual_estimate_micros=row["actual_estimate"],
                )
                for row in rows.iterator(chunk_size=5000)
                if row["day"] in keep
            ],
            batch_size=5000,
        )
        DailyUsageDay.objects.bulk_create([DailyUsageDay(day=day) for day in missing])


def daily_usage_groups(
    *, tenant_id: int | None, first: datetime, last: datetime, columns: Iterable[str]
) -> QuerySet[Any] | dict[str, int]:
    """The rollup's rows of [first, last) summed per group, with the report's sum names; with no columns, the
    sums of the whole span as one dict."""
    rows = DailyUsage.objects.filter(day__gte=first.date(), day__lt=last.date())
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    sums = {
        "requests": Coalesce(Sum("requests"), 0),
        "images": Coalesce(Sum("images"), 0),
        "price": Coalesce(Sum("price_micros"), 0),
        "cost": Coalesce(Sum("cost_micros"), 0),
        "refunded_cost": Coalesce(Sum("refunded_cost_micros"), 0),
        "actual_images": Coalesce(Sum("actual_images"), 0),
        "actual_cost": Coalesce(Sum("actual_cost_micros"), 0),
        "actual_estimate": Coalesce(Sum("actual_estimate_micros"), 0),
    }
    columns = list(columns)
    if not columns:
        return rows.aggregate(**sums)
    if "month" in columns:
        rows = rows.annotate(month=TruncMonth("day"))
    return rows.values(*columns).annotate(**sums).order_by()
