"""The billing report reads closed days from the daily rollup and gives exactly what the ledger gives."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import api_key_create, tenant_create
from billing.models import DailyUsage, DailyUsageDay, LedgerEntry
from billing.periods import day_start
from billing.selectors.reports import REPORT_GROUPS, _live_rows, billing_report, billing_totals

pytestmark = pytest.mark.django_db


def _settle(
    tenant, key, *, kind: str, at, model: str, amount: int, cost: int, images: int, ref: str, actual: int | None = None
) -> None:
    LedgerEntry.objects.create(
        tenant=tenant, api_key=key, kind=kind, reference=ref, amount_micros=amount, cost_micros=cost,
        images=images, model_id=model, quality="low", size="1024x1024", created_at=at,
        upstream_cost_actual_micros=actual,
    )


def _noon_yesterday():
    """A fixed "now" away from midnight: the rollup closes a day an hour after it ends, so a test run in the first
    hour (or minute) of a UTC day would see one closed day fewer than it built."""
    return day_start(timezone.now()) - timedelta(hours=12)


def test_report_over_rollup_and_ledger_equals_the_ledger_alone() -> None:
    now = _noon_yesterday()
    today = day_start(now)
    tenants = [tenant_create(slug=f"t{i}", name=f"T{i}") for i in range(2)]
    keys = [api_key_create(tenant=tenant, name="k").api_key for tenant in tenants]
    n = 0
    for days_ago in (5, 3, 1, 0):
        for i, (tenant, key) in enumerate(zip(tenants, keys, strict=True)):
            for model in ("openai/gpt-image-1", "bfl/flux-2-pro"):
                n += 1
                at = today - timedelta(days=days_ago) + timedelta(hours=2 + i)
                # Some captures know their actual upstream cost (their answers reported token usage).
                _settle(tenant, key, kind="capture", at=at, model=model, amount=1000 * n, cost=800 * n, images=n % 3 + 1,
                        ref=f"g{n}", actual=900 * n if n % 4 == 1 else None)
                n += 1
                _settle(tenant, key if n % 2 else None, kind="release", at=at, model=model, amount=500, cost=n,
                        images=0, ref=f"g{n}")
    start = today - timedelta(days=6) + timedelta(hours=5)  # a partial first day
    for group_by in REPORT_GROUPS:
        for tenant in (None, tenants[1]):
            via_rollup = list(billing_report(tenant=tenant, start=start, end=now, group_by=group_by, now=now))
            live = sorted(
                _live_rows(tenant=tenant, start=start, end=now, columns=REPORT_GROUPS[group_by]),
                key=lambda row: tuple((value is None, value) for value in row.group),
            )
            assert via_rollup == live, group_by
            assert via_rollup
            assert 0 < sum(row.actual_images for row in via_rollup) < sum(row.images for row in via_rollup)
    assert DailyUsageDay.objects.count() >= 5 and DailyUsage.objects.exists()
    written = DailyUsage.objects.count()
    totals = billing_totals(tenant=None, start=start, end=now, now=now)
    assert totals.requests == sum(row.requests for row in _live_rows(tenant=None, start=start, end=now, columns=("day",)))
    assert DailyUsage.objects.count() == written  # a closed day is rolled up once


def test_dashboard_periods_equal_the_report_totals() -> None:
    from billing.selectors.dashboard import dashboard_periods, money_by_period

    now = _noon_yesterday()
    tenant = tenant_create(slug="t", name="T")
    for n, days_ago in enumerate((40, 20, 8, 6, 2, 0)):
        _settle(tenant, None, kind="capture", at=now - timedelta(days=days_ago, minutes=1), model="m", amount=1000 + n,
                cost=700, images=1, ref=f"c{n}")
    money = money_by_period(tenant=None, now=now)
    for name, (start, end) in dashboard_periods(now=now).items():
        assert money[name] == billing_totals(tenant=None, start=start, end=end, now=now), name
    assert money["7d"].requests == 3  # 6, 2 and 0 days ago
