"""Low-balance and spend-limit alerts: one signed webhook event per crossing, written in the capture's
transaction, re-armed when money comes back."""

import pytest

from accounts.services import SYSTEM
from billing.models import Plan
from billing.services.wallets import wallet_grant
from tests.generations.moderation_support import succeeded_generation
from tests.generations.support import customer_create
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db

# One low/1024 image of gpt-image-2 costs 0.006000 and sells at 0.007200 on a 20% markup.
IMAGE_PRICE = 7_200


def _events(event_type: str) -> list[WebhookEvent]:
    return list(WebhookEvent.objects.filter(type=event_type).order_by("id"))


def test_low_balance_alerts_once_per_crossing_and_rearms_after_a_grant() -> None:
    plan = Plan.objects.create(name="alerting", low_balance_threshold_micros=40_000)
    customer = customer_create("lowbal", credit_micros=50_000, plan=plan)
    WebhookEndpoint.objects.create(tenant=customer.tenant, url="https://hooks.example.com/x", event_types=["wallet.low_balance"])

    succeeded_generation(customer)  # 50 000 → 42 800 available: above
    assert _events("wallet.low_balance") == []
    succeeded_generation(customer)  # → 35 600: crossed
    succeeded_generation(customer)  # → 28 400: still below, no second event
    (event,) = _events("wallet.low_balance")
    assert event.tenant_id == customer.tenant.pk
    assert event.payload["available_usd"] == "0.035600"
    assert event.payload["threshold_usd"] == "0.040000"
    assert WebhookDelivery.objects.filter(event=event).count() == 1  # to the subscribed endpoint, signed on delivery

    wallet_grant(tenant=customer.tenant, amount_micros=100_000, reference="topup-1", actor=SYSTEM)  # → 128 400
    succeeded_generation(customer)  # → 121 200: above, nothing
    assert len(_events("wallet.low_balance")) == 1
    for _ in range(12):  # 121 200 − 12 × 7 200 = 34 800: crossed again, once
        succeeded_generation(customer)
    assert len(_events("wallet.low_balance")) == 2


def test_spend_limit_near_alerts_once_when_the_month_reaches_the_percentage() -> None:
    plan = Plan.objects.create(name="capped", monthly_spend_limit_micros=100_000, spend_alert_percent=14)
    customer = customer_create("spender", credit_micros=1_000_000, plan=plan)

    succeeded_generation(customer)  # 7 200 of 100 000: 7%
    assert _events("spend_limit.near") == []
    succeeded_generation(customer)  # 14 400: 14.4% ≥ 14%
    succeeded_generation(customer)
    (event,) = _events("spend_limit.near")
    assert event.payload["month_spend_usd"] == "0.014400"
    assert event.payload["monthly_spend_limit_usd"] == "0.100000"
    assert event.payload["alert_percent"] == 14


def test_no_threshold_no_event() -> None:
    customer = customer_create("quiet", credit_micros=20_000)
    succeeded_generation(customer)  # 6 800 left, but the default plan sets no threshold
    assert not WebhookEvent.objects.filter(type__in=["wallet.low_balance", "spend_limit.near"]).exists()
