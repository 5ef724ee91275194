"""The real stack below the API: submit → forwarder drain → sandbox over HTTP → storage on disk → ledger."""

import hashlib
from pathlib import Path

import pytest
from django.conf import settings

from billing.models import LedgerEntry
from generations.forwarder import forward_drain
from generations.models import Generation
from tests.generations.support import LOW_SQUARE_PRICE_MICROS, generation_post

pytestmark = pytest.mark.django_db(transaction=True)


def test_success_stores_images_and_captures_exactly_their_price(make_customer, forwarding) -> None:
    customer = make_customer()
    created = generation_post(customer, n=2)
    assert created["status"] == "queued" and created["estimated_usd"] == "0.014400"
    assert customer.wallet().held_micros == 2 * LOW_SQUARE_PRICE_MICROS

    assert forward_drain().claimed == 1

    generation = customer.client.get(f"/v1/generations/{created['id']}").json()
    assert generation["status"] == "succeeded"
    assert generation["charged_usd"] == "0.014400" and generation["images_returned"] == 2
    for image in generation["images"]:
        stored = Path(settings.MEDIA_ROOT) / Generation.objects.get(public_id=created["id"]).images.get(
            index=image["index"]).storage_key
        data = stored.read_bytes()
        assert hashlib.sha256(data).hexdigest() == image["sha256"] and len(data) == image["bytes"]
        assert (image["width"], image["height"]) == (1024, 1024)
        download = customer.client.get(f"/v1/generations/{created['id']}/images/{image['index']}")
        assert download.status_code == 200 and b"".join(download.streaming_content) == data
    assert str(stored.relative_to(settings.MEDIA_ROOT)).startswith(f"tenants/{customer.tenant.slug}/generations/")
    assert customer.ledger(created["id"]) == [("hold", 14_400), ("capture", 14_400)]
    wallet = customer.wallet()
    assert wallet.held_micros == 0 and wallet.balance_micros == 50_000_000 - 14_400
    assert forwarding.calls["predictions"] == 1


def test_signed_url_serves_the_image_without_a_key(make_customer, forwarding, client) -> None:
    customer = make_customer()
    created = generation_post(customer)
    forward_drain()
    image = customer.client.get(f"/v1/generations/{created['id']}").json()["images"][0]
    response = client.get(image["url"])
    assert response.status_code == 200
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == image["sha256"]
    tampered = image["url"][:-3] + "xyz"
    assert client.get(tampered).status_code == 404


def test_content_policy_failure_has_its_own_code(make_customer, forwarding) -> None:
    customer = make_customer()
    created = generation_post(customer, prompt="something [fault:moderated]")
    forward_drain()
    generation = customer.client.get(f"/v1/generations/{created['id']}").json()
    assert generation["status"] == "failed"
    assert generation["error"]["code"] == "content_policy_violation"
    assert customer.wallet().balance_micros == 50_000_000


def test_transient_errors_then_success_capture_once(make_customer, forwarding) -> None:
    customer = make_customer()
    created = generation_post(customer, prompt="flaky [fault:500x2]")
    forward_drain()
    generation = Generation.objects.get(public_id=created["id"])
    assert generation.status == "succeeded" and generation.attempts == 3
    assert customer.ledger(created["id"]) == [("hold", 7_200), ("capture", 7_200)]
    assert forwarding.calls["predictions"] == 3


def test_non_image_output_fails_without_charge(make_customer, forwarding) -> None:
    customer = make_customer()
    created = generation_post(customer, prompt="broken [fault:not-image]")
    forward_drain()
    generation = Generation.objects.get(public_id=created["id"])
    assert generation.status == "failed" and generation.charged_micros == 0
    release = LedgerEntry.objects.get(reference=created["id"], kind="release")
    assert release.cost_micros == 6_000, "the upstream charged us for a call that answered: recorded as our loss"


def test_many_generations_drain_in_one_pass(make_customer, forwarding, roomy_plan) -> None:
    customer = make_customer(plan=roomy_plan)
    ids = [generation_post(customer, prompt=f"tile {index}")["id"] for index in range(12)]
    stats = forward_drain(concurrency=8)
    assert stats.claimed == 12 and stats.max_in_flight == 8
    assert set(Generation.objects.filter(public_id__in=ids).values_list("status", flat=True)) == {"succeeded"}
    assert customer.wallet().balance_micros == 50_000_000 - 12 * 7_200


@pytest.mark.parametrize(
    ("model", "sandbox_call"),
    [("bfl/FLUX-1.1-pro", "predictions"), ("bfl/flux-kontext-max", "tasks.submit")],
)
def test_predictions_and_async_task_families_end_to_end(make_customer, forwarding, model, sandbox_call) -> None:
    from accounts.services import SYSTEM
    from billing.services.prices import price_set

    price_set(model_id=model, quality="*", size="*", cost_micros=40_000, actor=SYSTEM)
    customer = make_customer()
    response = customer.client.post("/v1/generations", {"model": model, "prompt": "a red fox"}, format="json")
    assert response.status_code == 202, response.json()
    created = response.json()
    forward_drain()
    generation = Generation.objects.get(public_id=created["id"])
    assert generation.status == "succeeded", generation.error_message
    assert generation.images.count() == 1 and generation.charged_micros == 48_000
    assert forwarding.calls[sandbox_call] == 1
    if sandbox_call == "tasks.submit":
        assert generation.upstream_task_id and forwarding.calls["tasks.poll"] >= 1
    assert customer.ledger(created["id"]) == [("hold", 48_000), ("capture", 48_000)]


@pytest.mark.slow  # a two-second upstream call
def test_leases_are_renewed_while_a_slow_call_is_in_flight(make_customer, forwarding, settings) -> None:
    settings.FORWARD_LEASE_SECONDS = 1  # renewed every third of it, i.e. several times during the call
    forwarding.latency = 2.0
    customer = make_customer()
    created = generation_post(customer, prompt="slow but steady")
    assert forward_drain().claimed == 1
    generation = Generation.objects.get(public_id=created["id"])
    assert generation.status == "succeeded" and generation.attempts == 1
    assert customer.ledger(created["id"]) == [("hold", 7_200), ("capture", 7_200)]


def test_a_storage_failure_while_settling_retries_instead_of_stranding_the_generation(
    make_customer, forwarding, monkeypatch
) -> None:
    from generations.forwarder import pipeline

    real_save = pipeline.blob_save_file
    failures = iter([OSError("disk full")])

    def flaky_save(**kwargs):
        error = next(failures, None)
        if error is not None:
            raise error
        return real_save(**kwargs)

    monkeypatch.setattr(pipeline, "blob_save_file", flaky_save)
    customer = make_customer()
    created = generation_post(customer, prompt="saved on the second try")
    forward_drain()
    generation = Generation.objects.get(public_id=created["id"])
    assert generation.status == "succeeded" and generation.attempts == 2
    assert generation.unknown_outcomes == 1, "the first answer was paid for upstream and then lost"
    assert customer.ledger(created["id"]) == [("hold", 7_200), ("capture", 7_200)]


def test_an_unreadable_answer_is_failed_once_refunded_and_kept_for_staff(make_customer, forwarding) -> None:
    customer = make_customer()
    created = generation_post(customer, prompt="a lighthouse [fault:malformed]")

    forward_drain()

    generation = Generation.objects.get(public_id=created["id"])
    assert generation.status == "failed" and generation.error_code == "upstream_unrecognized_response"
    assert generation.attempts == 1 and forwarding.calls["fault:malformed"] == 1
    assert generation.upstream_response.startswith('{"data": [{"url": "http://')
    # The tenant gets everything back; what the upstream probably charged is recorded as our loss.
    assert customer.ledger(created["id"]) == [("hold", LOW_SQUARE_PRICE_MICROS), ("release", LOW_SQUARE_PRICE_MICROS)]
    assert generation.upstream_cost_micros == 6_000 and customer.wallet().held_micros == 0
