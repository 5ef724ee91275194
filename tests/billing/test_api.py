import csv
import io
from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.db.models import Sum
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Tenant
from accounts.services import IssuedApiKey
from billing.models import LedgerEntry, Plan, TenantPlan
from billing.services.ledger import billing_capture, billing_release
from billing.services.statements import statement_close
from tests.billing.conftest import MODEL, UNIT_PRICE

pytestmark = pytest.mark.django_db


@pytest.fixture
def member_client(api_client: Callable[..., APIClient], member_key: IssuedApiKey) -> APIClient:
    return api_client(member_key)


@pytest.fixture
def activity(tenant: Tenant, funded, reserve, make_key) -> None:
    """Three charged generations over two keys and two sizes, one refunded failure, one still running."""
    funded(10_000_000)
    other = make_key(tenant, name="other")
    reserve("gen_a", n=2)
    billing_capture(reference="gen_a", images=2)
    reserve("gen_b", n=1, key=other)
    billing_capture(reference="gen_b", images=1)
    reserve("gen_c", n=3)
    billing_capture(reference="gen_c", images=2)
    reserve("gen_d", n=1)
    billing_release(reference="gen_d", upstream_cost_micros=10_000, reason="upstream 500")
    reserve("gen_e", n=1)


def test_quota_lists_each_limit_with_use_and_reset(member_client: APIClient, activity: None) -> None:
    body = member_client.get("/v1/quota").json()
    limits = {item["name"]: item for item in body["limits"]}
    assert body["plan"] == "default" and body["max_n"] == 10 and body["allowed_models"] is None
    # Running and queued are counts of generations (tests/generations/test_quota.py); gen_e is a hold alone.
    assert limits["concurrent_generations"] == {
        "name": "concurrent_generations",
        "unit": "generations",
        "limit": 8,
        "used": 0,
        "remaining": 8,
        "resets_at": None,
    }
    assert limits["queued_generations"]["limit"] == 100 and limits["queued_generations"]["used"] == 0
    assert limits["concurrent_waits"] == {
        "name": "concurrent_waits",
        "unit": "requests",
        "limit": 8,
        "used": 0,
        "remaining": 8,
        "resets_at": None,
    }
    assert limits["images_per_day"]["used"] == 5 + 1 and limits["images_per_day"]["resets_at"]
    assert limits["monthly_spend"]["unit"] == "usd" and limits["monthly_spend"]["limit"] is None
    assert limits["monthly_spend"]["used"] == f"0.{6 * UNIT_PRICE:06d}"
    assert body["wallet"]["held_usd"] == f"0.{UNIT_PRICE:06d}"
    assert limits["requests_per_minute"]["limit"] == 600


def test_usage_totals_equal_ledger_sums(member_client: APIClient, tenant: Tenant, activity: None) -> None:
    body = member_client.get("/v1/usage", {"group_by": "model,api_key"}).json()
    captures = LedgerEntry.objects.filter(tenant=tenant, kind="capture")
    ledger = captures.aggregate(images=Sum("images"), amount=Sum("amount_micros"))
    assert body["totals"]["images"] == ledger["images"] == 5
    assert body["totals"]["amount_usd"] == f"0.{ledger['amount']:06d}"
    assert body["totals"]["requests"] == captures.count() == 3
    assert sum(row["images"] for row in body["data"]) == ledger["images"]
    by_key = {row["api_key"]: row for row in body["data"]}
    assert len(by_key) == 2 and all(row["model"] == MODEL for row in body["data"])


def test_usage_by_day_and_size(member_client: APIClient, activity: None) -> None:
    body = member_client.get("/v1/usage", {"group_by": "day,size"}).json()
    assert body["data"] == [
        {
            "day": timezone.now().date().isoformat(),
            "size": "1024x1024",
            "requests": 3,
            "images": 5,
            "amount_usd": f"0.{5 * UNIT_PRICE:06d}",
        }
    ]


def test_usage_without_group_by_is_one_total_row(member_client: APIClient, activity: None) -> None:
    body = member_client.get("/v1/usage").json()
    assert body["group_by"] == []
    assert body["data"] == [body["totals"]] == [
        {"requests": 3, "images": 5, "amount_usd": f"0.{5 * UNIT_PRICE:06d}"}
    ]


def test_usage_rejects_unknown_grouping_and_reversed_dates(member_client: APIClient) -> None:
    bad_group = member_client.get("/v1/usage", {"group_by": "colour"})
    assert bad_group.status_code == 400 and bad_group.json()["error"]["param"] == "group_by"
    reversed_dates = member_client.get("/v1/usage", {"start": "2026-02-01", "end": "2026-01-01"})
    assert reversed_dates.status_code == 400 and reversed_dates.json()["error"]["param"] == "end"


def test_usage_is_per_tenant(api_client, make_tenant, make_key, activity: None) -> None:
    stranger = api_client(make_key(make_tenant("stranger")))
    assert stranger.get("/v1/usage").json()["totals"] == {
        "requests": 0,
        "images": 0,
        "amount_usd": "0.000000",
    }


def test_statements_list_detail_csv_and_html(
    member_client: APIClient, tenant: Tenant, activity: None
) -> None:
    statement = statement_close(tenant=tenant, period_start=timezone.now().date().replace(day=1))
    listed = member_client.get("/v1/statements").json()["results"]
    assert [item["id"] for item in listed] == [statement.pk]
    detail = member_client.get(f"/v1/statements/{statement.pk}").json()
    assert detail["images"] == 5 and detail["charges_usd"] == f"0.{5 * UNIT_PRICE:06d}"
    assert detail["lines"] == [
        {
            "model": MODEL,
            "quality": "",
            "size": "1024x1024",
            "charge": "images",
            "images": 5,
            "unit_price_usd": f"0.{UNIT_PRICE:06d}",
            "amount_usd": f"0.{5 * UNIT_PRICE:06d}",
        }
    ]
    response = member_client.get(f"/v1/statements/{statement.pk}.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["model", "quality", "size", "charge", "images", "unit_price_usd", "amount_usd"]
    assert rows[-1] == ["total", "", "", "", "5", "", f"0.{5 * UNIT_PRICE:06d}"]
    page = member_client.get(f"/v1/statements/{statement.pk}.html")
    assert page.status_code == 200 and MODEL in page.content.decode() and "Acme Inc" in page.content.decode()


def test_other_tenants_statements_are_404(
    api_client, make_tenant, make_key, tenant: Tenant, activity: None
) -> None:
    statement = statement_close(tenant=tenant, period_start=timezone.now().date().replace(day=1))
    stranger = api_client(make_key(make_tenant("stranger")))
    for suffix in ("", ".csv", ".html"):
        assert stranger.get(f"/v1/statements/{statement.pk}{suffix}").status_code == 404
    assert stranger.get("/v1/statements").json()["results"] == []


def test_requests_above_the_plan_rate_are_429_rate_limited(member_client: APIClient, tenant: Tenant) -> None:
    cache.clear()
    plan = Plan.objects.create(name="slow", requests_per_minute=3)
    TenantPlan.objects.create(tenant=tenant, plan=plan)
    statuses = [member_client.get("/v1/quota").status_code for _ in range(3)]
    refused = member_client.get("/v1/quota")
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert 0 < int(refused["Retry-After"]) <= 60
    cache.clear()
