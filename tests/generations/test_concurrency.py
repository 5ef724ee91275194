"""Real threads with their own PostgreSQL connections: claims never overlap, idempotency keys never double-charge."""

import pytest
from rest_framework.test import APIClient

from generations.models import Generation
from generations.services.leases import generation_claim_batch
from tests.generations.support import LOW_SQUARE
from tests.threads import run_in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_claims_never_take_the_same_generation(make_customer, roomy_plan) -> None:
    customer = make_customer(plan=roomy_plan)
    for index in range(60):
        assert customer.client.post(
            "/v1/generations", {**LOW_SQUARE, "prompt": f"p{index}"}, format="json"
        ).status_code == 202

    claims = run_in_threads(6, lambda _: generation_claim_batch(limit=15, lease_seconds=60))

    claimed_ids = [claim.id for batch in claims for claim in batch]
    assert len(claimed_ids) == len(set(claimed_ids)) == 60
    assert Generation.objects.filter(status="running", attempts=1).count() == 60


def test_concurrent_requests_with_one_idempotency_key_create_one_generation(make_customer) -> None:
    customer = make_customer()
    body = {**LOW_SQUARE, "prompt": "exactly once"}

    def post(_: int) -> tuple[int, str]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {customer.key.secret}")
        response = client.post("/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
        return response.status_code, response.json().get("id") or response.json()["error"]["code"]

    results = run_in_threads(10, post)

    assert all(not isinstance(result, Exception) for result in results), results
    created = {value for status, value in results if status == 202}
    assert len(created) == 1, results
    assert {status for status, _ in results} <= {202, 409}
    assert Generation.objects.filter(tenant=customer.tenant).count() == 1
    assert customer.ledger() == [("hold", 7_200)]


def test_settling_a_generation_does_not_deadlock_with_a_submit_of_the_same_tenant(make_customer) -> None:
    """A worker settling holds the generation row and then needs the wallet; a submit holds the wallet and then
    inserts rows pointing at the tenant. Locking the joined tenant row too (FOR UPDATE without OF) deadlocked."""
    import threading
    import time

    from django.db import transaction

    from billing.services.ledger import billing_capture
    from generations.models import generation_public_id
    from generations.services.leases import claim_lock
    from generations.services.submit import GenerationRequest, generation_create, generation_prepare

    customer = make_customer()
    request = GenerationRequest(model="gpt-image-2", prompt="x", quality="low", size="1024x1024")

    def create() -> None:
        prepared = generation_prepare(tenant=customer.tenant, api_key=None, request=request)
        with transaction.atomic():
            generation_create(tenant=customer.tenant, api_key=None, prepared=prepared,
                              public_id=generation_public_id(), inputs=[])

    create()
    (claim,) = generation_claim_batch(limit=1, lease_seconds=60)
    claim_locked = threading.Event()

    def settle(index: int) -> str:
        if index == 0:
            with transaction.atomic():
                generation = claim_lock(claim=claim)
                claim_locked.set()
                time.sleep(0.5)  # the submit now holds the wallet and inserts its rows
                billing_capture(reference=generation.public_id, images=1)
            return "settled"
        claim_locked.wait(10)
        create()
        return "submitted"

    assert run_in_threads(2, settle) == ["settled", "submitted"]
