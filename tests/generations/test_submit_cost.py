"""What a warm submit costs in SQL, and that the read cache behind it never serves a change late."""

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import ApiKey
from accounts.services import SYSTEM, api_key_revoke, tenant_set_status
from billing.models import Plan, TenantPlan
from billing.services.plans import plan_assign
from billing.services.prices import price_set
from generations.models import PromptBlockRule
from project import readcache
from tests.generations.support import GPT_IMAGE, LOW_SQUARE

pytestmark = pytest.mark.django_db

MAX_STATEMENTS_PER_WARM_SUBMIT = 6


@pytest.mark.django_db(transaction=True)  # no test transaction around the request: statements as in production
def test_a_warm_submit_runs_at_most_six_statements_and_no_ledger_aggregate(make_customer) -> None:
    # Every limit set, so the submit checks them all (the key budget is the one aggregate, and only when set).
    plan = Plan.objects.create(
        name="limited", max_n=10, max_concurrent=50, images_per_day=1000, images_per_month=20000,
        monthly_spend_limit_micros=10**12, requests_per_minute=600,
    )
    customer = make_customer(plan=plan)
    body = {**LOW_SQUARE, "prompt": "a lighthouse at dawn"}
    assert customer.client.post("/v1/generations", body, format="json").status_code == 202  # warms the caches

    with CaptureQueriesContext(connection) as queries:
        response = customer.client.post("/v1/generations", body, format="json")

    assert response.status_code == 202 and response.json()["status"] == "queued"
    statements = [query["sql"] for query in queries.captured_queries]
    if connection.vendor == "sqlite":
        # No data-modifying CTEs on SQLite: the money step is a transaction there, whose BEGIN and COMMIT are
        # function calls in this process, not round trips. On PostgreSQL everything counts.
        statements = [sql for sql in statements if sql not in ("BEGIN IMMEDIATE", "BEGIN", "COMMIT")]
    assert len(statements) <= MAX_STATEMENTS_PER_WARM_SUBMIT, "\n".join(statements)
    if connection.vendor == "postgresql":
        # The read cache's version token (here on the database cache), the rate counter, and the money step in
        # one statement (wallet UPDATE + hold + generation + the forwarder's wake-up notice).
        assert len(statements) == 3, "\n".join(statements)
        assert statements[-1].startswith("WITH chain_head AS (UPDATE billing_wallet")
        assert "pg_notify(" in statements[-1]
    assert not [sql for sql in statements if "SUM(" in sql.upper() or "generationimage" in sql]
    assert customer.wallet().open_holds == 2


def test_plan_changes_apply_to_the_next_request(make_customer, roomy_plan) -> None:
    customer = make_customer(plan=roomy_plan)
    body = {**LOW_SQUARE, "prompt": "x", "n": 3}
    assert customer.client.post("/v1/generations", body, format="json").status_code == 202
    tenant_plan = TenantPlan.objects.get(tenant=customer.tenant)
    tenant_plan.max_n = 2
    tenant_plan.save()

    response = customer.client.post("/v1/generations", body, format="json")

    assert response.status_code == 400 and response.json()["error"]["code"] == "n_above_plan_limit"


def test_price_blocklist_key_and_tenant_changes_apply_to_the_next_request(make_customer) -> None:
    customer = make_customer()
    body = {**LOW_SQUARE, "prompt": "a quiet harbour"}
    assert customer.client.post("/v1/generations", body, format="json").json()["unit_price_usd"] == "0.007200"

    price_set(model_id=GPT_IMAGE, quality="low", size="1024x1024", cost_micros=20_000, actor=SYSTEM)
    assert customer.client.post("/v1/generations", body, format="json").json()["unit_price_usd"] == "0.024000"

    PromptBlockRule.objects.create(pattern="harbour")
    assert customer.client.post("/v1/generations", body, format="json").json()["error"]["code"] == "prompt_blocked"

    tenant_set_status(tenant=customer.tenant, status="suspended", actor=SYSTEM)
    assert customer.client.get("/v1/generations").json()["error"]["code"] == "tenant_suspended"
    tenant_set_status(tenant=customer.tenant, status="active", actor=SYSTEM)
    assert customer.client.get("/v1/generations").status_code == 200

    api_key_revoke(api_key=customer.key.api_key)
    assert customer.client.get("/v1/generations").json()["error"]["code"] == "api_key_revoked"


def test_a_change_published_by_another_process_is_seen_by_the_next_request(make_customer, roomy_plan) -> None:
    """Another process changes rows and publishes a new version; this process never got a signal."""
    customer = make_customer(plan=roomy_plan)
    body = {**LOW_SQUARE, "prompt": "x", "n": 2}
    assert customer.client.post("/v1/generations", body, format="json").status_code == 202
    TenantPlan.objects.filter(tenant=customer.tenant).update(max_n=1)  # update(): no signal in this process
    assert customer.client.post("/v1/generations", body, format="json").status_code == 202  # still cached

    caches["default"].set(readcache.VERSION_KEY, "written-by-another-process", timeout=None)

    response = customer.client.post("/v1/generations", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "n_above_plan_limit"


def test_a_lost_version_token_reloads_instead_of_serving_stale_rows(make_customer) -> None:
    customer = make_customer()
    assert customer.client.get("/v1/generations").status_code == 200
    ApiKey.objects.filter(pk=customer.key.api_key.pk).update(revoked=True)
    caches["default"].delete(readcache.VERSION_KEY)  # evicted, or a flushed cache

    assert customer.client.get("/v1/generations").json()["error"]["code"] == "api_key_revoked"


def test_default_plan_assignment_is_seen_at_once(make_customer) -> None:
    customer = make_customer()
    body = {**LOW_SQUARE, "prompt": "x", "n": 2}
    assert customer.client.post("/v1/generations", body, format="json").status_code == 202
    plan_assign(tenant=customer.tenant, plan=Plan.objects.create(name="tiny", max_n=1), actor=SYSTEM)

    assert customer.client.post("/v1/generations", body, format="json").status_code == 400
