"""`GET /v1/quota` tells running, queued and waiting apart: `max_concurrent` bounds what runs, `max_queued` what
waits its turn, `max_concurrent_waits` the requests waiting for a result."""

import threading

import pytest
from django.db import connections
from rest_framework.test import APIClient

from billing.models import Plan
from generations.models import Generation
from generations.services.leases import generation_claim_batch
from tests.generations.processes import wait_until
from tests.generations.support import LOW_SQUARE, generation_post

pytestmark = pytest.mark.django_db(transaction=True)


def _lines(client: APIClient) -> dict[str, tuple[int | None, int, int | None]]:
    response = client.get("/v1/quota")
    assert response.status_code == 200
    return {line["name"]: (line["limit"], line["used"], line["remaining"]) for line in response.json()["limits"]}


def _activity(client: APIClient) -> dict[str, tuple[int | None, int, int | None]]:
    lines = _lines(client)
    return {name: lines[name] for name in ("concurrent_generations", "queued_generations", "concurrent_waits")}


def test_quota_counts_running_queued_and_waiting_generations_apart(make_customer) -> None:
    plan = Plan.objects.create(name="small", max_concurrent=2, max_queued=3, max_concurrent_waits=4)
    busy = make_customer("busy", plan=plan)
    other = make_customer("other", plan=plan)
    assert _activity(busy.client) == {
        "concurrent_generations": (2, 0, 2), "queued_generations": (3, 0, 3), "concurrent_waits": (4, 0, 4)}

    for number in range(5):
        generation_post(busy, prompt=f"mine {number}")
    generation_post(other, prompt="not mine")
    # The forwarder's claim runs at most max_concurrent per tenant: 2 of busy's 5, and other's 1.
    assert len(generation_claim_batch(limit=10, lease_seconds=60)) == 3
    assert _activity(busy.client) == {
        "concurrent_generations": (2, 2, 0), "queued_generations": (3, 3, 0), "concurrent_waits": (4, 0, 4)}
    assert _activity(other.client)["concurrent_generations"] == (2, 1, 1)

    # Both full: the next submit is refused, as the lines say.
    refused = busy.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "one too many"}, format="json")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "queue_full"

    # A request waiting for its result takes a wait slot until its generation is final.
    still_queued = Generation.objects.filter(tenant=busy.tenant, status=Generation.Status.QUEUED)
    busy.client.post(f"/v1/generations/{still_queued.first().public_id}/cancel")
    answers: list[int] = []

    def wait_for_one() -> None:
        try:
            waiter = APIClient()
            waiter.credentials(HTTP_AUTHORIZATION=f"Bearer {busy.key.secret}")
            answers.append(waiter.post("/v1/generations", {**LOW_SQUARE, "prompt": "waiting"}, format="json",
                                       HTTP_PREFER="wait=30").status_code)
        finally:
            connections.close_all()

    thread = threading.Thread(target=wait_for_one)
    thread.start()
    try:
        assert wait_until(lambda: _lines(busy.client)["concurrent_waits"][1] == 1, timeout=20)
        assert wait_until(lambda: Generation.objects.filter(prompt="waiting").exists(), timeout=20)
        assert _activity(busy.client) == {
            "concurrent_generations": (2, 2, 0), "queued_generations": (3, 3, 0), "concurrent_waits": (4, 1, 3)}
    finally:
        waiting = Generation.objects.get(tenant=busy.tenant, prompt="waiting")
        busy.client.post(f"/v1/generations/{waiting.public_id}/cancel")  # final: the wait ends
        thread.join(timeout=30)
    assert answers == [200]
    assert _activity(busy.client) == {
        "concurrent_generations": (2, 2, 0), "queued_generations": (3, 2, 1), "concurrent_waits": (4, 0, 4)}


def test_quota_of_an_unlimited_plan_counts_all_the_same(make_customer) -> None:
    plan = Plan.objects.create(name="open", max_concurrent=None, max_queued=None, max_concurrent_waits=None)
    customer = make_customer("open", plan=plan)
    for number in range(3):
        generation_post(customer, prompt=f"p{number}")
    generation_claim_batch(limit=1, lease_seconds=60)
    assert _activity(customer.client) == {
        "concurrent_generations": (None, 1, None), "queued_generations": (None, 2, None),
        "concurrent_waits": (None, 0, None)}
