"""Lifecycle services through the API and a real drain: a failure releases the whole hold, spent retries fail,
and cancel is free while queued and refused once final."""

import pytest

from generations.forwarder import forward_drain
from generations.models import Generation
from tests.generations.support import generation_post

pytestmark = pytest.mark.django_db(transaction=True)


def test_permanent_upstream_error_fails_and_releases_the_hold(make_customer, forwarding) -> None:
    customer = make_customer()
    created = generation_post(customer, prompt="please [fault:400]")
    forward_drain()
    generation = customer.client.get(f"/v1/generations/{created['id']}").json()
    assert generation["status"] == "failed" and generation["charged_usd"] == "0.000000"
    assert generation["error"]["code"]
    assert customer.ledger(created["id"]) == [("hold", 7_200), ("release", 7_200)]
    wallet = customer.wallet()
    assert wallet.balance_micros == 50_000_000 and wallet.held_micros == 0


def test_transient_errors_past_max_attempts_fail_and_release(make_customer, forwarding, settings) -> None:
    settings.FORWARD_MAX_ATTEMPTS = 2
    customer = make_customer()
    created = generation_post(customer, prompt="down [fault:500]")
    forward_drain()
    generation = Generation.objects.get(public_id=created["id"])
    assert generation.status == "failed" and generation.attempts == 2
    assert customer.ledger(created["id"]) == [("hold", 7_200), ("release", 7_200)]


def test_cancel_while_queued_is_free_and_never_forwarded(make_customer, forwarding) -> None:
    customer = make_customer()
    created = generation_post(customer)
    response = customer.client.post(f"/v1/generations/{created['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert forward_drain().claimed == 0
    assert forwarding.calls["predictions"] == 0
    assert customer.ledger(created["id"]) == [("hold", 7_200), ("release", 7_200)]
    again = customer.client.post(f"/v1/generations/{created['id']}/cancel")
    assert again.status_code == 200 and customer.ledger(created["id"])[-1] == ("release", 7_200)


def test_cancel_after_success_is_409(make_customer, forwarding) -> None:
    customer = make_customer()
    created = generation_post(customer)
    forward_drain()
    response = customer.client.post(f"/v1/generations/{created['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "generation_not_cancelable"
