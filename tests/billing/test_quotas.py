import pytest

from accounts.models import Tenant
from accounts.services import IssuedApiKey
from billing.models import Plan, TenantPlan
from billing.services.ledger import billing_capture
from project.api.errors import domain_error_status
from tests.billing.conftest import UNIT_PRICE, refusal

pytestmark = pytest.mark.django_db


def limit_plan(tenant: Tenant, **limits: object) -> None:
    plan = Plan.objects.create(name=f"limited-{tenant.pk}", **limits)
    TenantPlan.objects.update_or_create(tenant=tenant, defaults={"plan": plan})


def test_model_outside_the_plan_is_403(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    limit_plan(tenant, allowed_models=["openai/gpt-image-2"])
    error = refusal(lambda: reserve("gen_1"))
    assert (domain_error_status(error), error.code, error.param) == (403, "model_not_allowed", "model")


def test_n_above_the_plan_is_400_naming_n(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    limit_plan(tenant, max_n=2)
    error = refusal(lambda: reserve("gen_1", n=3))
    assert (domain_error_status(error), error.code, error.param) == (400, "n_above_plan_limit", "n")


def test_submits_beyond_max_concurrent_wait_and_the_queue_depth_refuses_with_queue_full(
    tenant: Tenant, funded, reserve
) -> None:
    funded(1_000_000)
    limit_plan(tenant, max_concurrent=2, max_queued=1)
    reserve("gen_1")
    reserve("gen_2")
    reserve("gen_3")  # beyond max_concurrent: accepted, it waits for a running slot
    error = refusal(lambda: reserve("gen_4"))
    assert (domain_error_status(error), error.code) == (429, "queue_full") and int(error.retry_after_seconds) > 0
    billing_capture(reference="gen_1", images=1)
    reserve("gen_4")


def test_daily_images_count_captured_and_held_images(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    limit_plan(tenant, images_per_day=5)
    reserve("gen_1", n=3)
    billing_capture(reference="gen_1", images=3)
    reserve("gen_2", n=2)
    error = refusal(lambda: reserve("gen_3", n=1))
    assert (domain_error_status(error), error.code) == (429, "daily_image_limit")
    assert 0 < error.retry_after_seconds <= 86_400


def test_monthly_images_limit_is_429(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    limit_plan(tenant, images_per_month=2)
    error = refusal(lambda: reserve("gen_1", n=3))
    assert (domain_error_status(error), error.code) == (429, "monthly_image_limit") and error.retry_after_seconds


def test_monthly_spend_limit_is_402(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    limit_plan(tenant, monthly_spend_limit_micros=2 * UNIT_PRICE)
    reserve("gen_1")
    billing_capture(reference="gen_1", images=1)
    reserve("gen_2")
    error = refusal(lambda: reserve("gen_3"))
    assert (domain_error_status(error), error.code) == (402, "spend_limit_reached")


def test_key_budget_counts_only_that_key(tenant: Tenant, funded, reserve, make_key) -> None:
    funded(1_000_000)
    limited: IssuedApiKey = make_key(tenant, name="limited")
    limited.api_key.monthly_budget_micros = UNIT_PRICE
    limited.api_key.save(update_fields=["monthly_budget_micros"])
    reserve("gen_1", key=limited)
    reserve("gen_2")  # another key, not counted
    error = refusal(lambda: reserve("gen_3", key=limited))
    assert (domain_error_status(error), error.code) == (402, "key_budget_reached")
