"""The staff dashboard's money figures, from the billing report's own selectors (`billing.selectors.reports`), so
the dashboard, the report page and its CSV can never disagree: the period totals are `billing_totals`, the charts,
top tenants and top keys are `billing_report` rows. Upstream cost is the estimate recorded at capture; beside it
the actual cost where the upstream's answers reported it (`ReportRow.actual_*`: the captures it is known for)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum
from django.db.models.functions import Coalesce

from accounts.models import Tenant
from billing.models import Wallet
from billing.periods import day_start, month_start
from billing.selectors.reports import ReportRow, billing_report

# The tiles' periods, each ending now: (name, label).
PERIODS = (("today", "Today"), ("7d", "Last 7 days"), ("month", "Month to date"))
CHART_DAYS = (7, 30, 90)
CHART_SERIES = 8  # the biggest series are drawn; the rest add up to "other"


def dashboard_periods(*, now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Today (UTC), the last 7 days (today and the six before) and the month to date, each ending now."""
    today = day_start(now)
    return {"today": (today, now), "7d": (today - timedelta(days=6), now), "month": (month_start(now), now)}


def money_by_period(*, tenant: Tenant | None, now: datetime) -> dict[str, ReportRow]:
    """`billing_totals` of each period, from one `billing_report` by day over their union (every period is whole
    UTC days ending now, so a period's sums are its days' sums)."""
    periods = dashboard_periods(now=now)
    start = min(start for start, _end in periods.values())
    days = list(billing_report(tenant=tenant, start=start, end=now, group_by="day", now=now))
    totals = {}
    for name, (period_start, _end) in periods.items():
        rows = [row for row in days if row.group[0] >= period_start.date()]
        totals[name] = ReportRow(
            group=(),
            requests=sum(row.requests for row in rows),
            images=sum(row.images for row in rows),
            price_micros=sum(row.price_micros for row in rows),
            cost_micros=sum(row.cost_micros for row in rows),
            refunded_cost_micros=sum(row.refunded_cost_micros for row in rows),
            actual_images=sum(row.actual_images for row in rows),
            actual_cost_micros=sum(row.actual_cost_micros for row in rows),
            actual_estimate_micros=sum(row.actual_estimate_micros for row in rows),
        )
    return totals


def money_held(*, tenant: Tenant | None) -> int:
    """Money reserved by open holds (submitted, not yet settled)."""
    wallets = Wallet.objects.all() if tenant is None else Wallet.objects.filter(tenant=tenant)
    return wallets.aggregate(held=Coalesce(Sum("held_micros"), 0))["held"]


@dataclass(frozen=True)
class Series:
    """A stacked chart: one value per day for each named series (micro-USD charged)."""

    days: list[str]
    series: dict[str, list[int]]


def spend_series(*, tenant: Tenant | None, now: datetime, days: int, by: str) -> Series:
    """Charged price per UTC day over the last `days` days, stacked by `model` or `tenant`."""
    start = day_start(now) - timedelta(days=days - 1)
    group_by = {"model": "day_model", "tenant": "day_tenant"}[by]
    dates = [(start + timedelta(days=i)).date() for i in range(days)]
    index = {day: i for i, day in enumerate(dates)}
    values: dict[str, list[int]] = {}
    for row in billing_report(tenant=tenant, start=start, end=now, group_by=group_by):
        day, name = row.group
        values.setdefault(name or "—", [0] * days)[index[day]] += row.price_micros
    return Series(days=[day.isoformat() for day in dates], series=_top_series(values, days))


def _top_series(values: dict[str, list[int]], days: int) -> dict[str, list[int]]:
    ranked = sorted(values.items(), key=lambda item: (-sum(item[1]), item[0]))
    top = dict(ranked[:CHART_SERIES])
    rest = ranked[CHART_SERIES:]
    if rest:
        top["other"] = [sum(values[i] for _name, values in rest) for i in range(days)]
    return top


def top_spenders(*, tenant: Tenant | None, start: datetime, end: datetime, by: str, limit: int = 10) -> list[ReportRow]:
    """The biggest tenants (`by="tenant"`) or API keys (`by="api_key"`) of the period by charged price."""
    rows = billing_report(tenant=tenant, start=start, end=end, group_by=by)
    return sorted(rows, key=lambda row: (-row.price_micros, row.group))[:limit]
