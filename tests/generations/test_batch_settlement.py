"""Successes are settled in batches (`generations_succeed`, `billing_capture_many`): one transaction for many
generations, with exactly the money of settling them one by one — the held amount captured once, the period
counters moved, cancels and lost leases handled per member, a failed batch retried without a second capture, and a
member that fails on its own not holding back the others."""

import uuid

import pytest
from django.db import OperationalError

from billing.models import LedgerEntry
from billing.selectors.drift import wallet_drifts
from billing.services.ledger import Capture, HoldNotFound, billing_capture_many
from generations.forwarder import forward_drain, settling
from generations.models import Generation, GenerationImage
from generations.services import finish
from generations.services.cancel import generation_cancel
from generations.services.leases import ClaimedGeneration, generation_claim_batch
from generations.services.settle import StoredOutput, Success, generations_succeed
from tests.generations.support import LOW_SQUARE_PRICE_MICROS, generation_post
from tests.threads import run_in_threads
from webhooks.models import WebhookEvent

COST_MICROS = 6_000


def _output(public_id: str) -> StoredOutput:
    return StoredOutput(index=0, storage_key=f"out/{public_id}.png", content_type="image/png", width=1024,
                        height=1024, byte_size=1234, sha256="0" * 64, revised_prompt="")


def _claims() -> dict[str, ClaimedGeneration]:
    return {claim.public_id: claim for claim in generation_claim_batch(limit=50, lease_seconds=60)}


def test_a_batch_settles_each_member_like_a_single_settlement(make_customer, roomy_plan) -> None:
    studio, other = make_customer(plan=roomy_plan), make_customer("other", plan=roomy_plan)
    kept = [generation_post(studio, prompt=f"kept {i}")["id"] for i in range(2)]
    canceled = generation_post(studio, prompt="canceled while running")["id"]
    lost = generation_post(other, prompt="lease taken over")["id"]
    claims = _claims()
    generation_cancel(generation=Generation.objects.get(public_id=canceled))
    Generation.objects.filter(public_id=lost).update(lease_token=uuid.uuid4())  # reaped and claimed elsewhere

    results = generations_succeed(
        successes=[Success(claim=claims[pid], outputs=[_output(pid)]) for pid in [*kept, canceled, lost]]
    )

    statuses = {pid: (row.status if (row := results[claims[pid].id]) else None) for pid in [*kept, canceled, lost]}
    assert statuses == {kept[0]: "succeeded", kept[1]: "succeeded", canceled: "canceled", lost: None}
    assert [studio.ledger(pid) for pid in kept] == [[("hold", 7_200), ("capture", 7_200)]] * 2
    assert studio.ledger(canceled) == [("hold", 7_200), ("capture", COST_MICROS)]
    assert other.ledger(lost) == [("hold", 7_200)]
    wallet = studio.wallet()
    assert wallet.balance_micros == 50_000_000 - 2 * LOW_SQUARE_PRICE_MICROS - COST_MICROS
    assert (wallet.held_micros, wallet.open_holds, wallet.month_images, wallet.day_images) == (0, 0, 2, 2)
    assert other.wallet().held_micros == LOW_SQUARE_PRICE_MICROS
    assert GenerationImage.objects.filter(generation__public_id__in=kept).count() == 2
    assert not GenerationImage.objects.filter(generation__public_id=canceled).exists()
    events = {event.payload["id"]: event for event in WebhookEvent.objects.filter(type="generation.succeeded")}
    assert set(events) == set(kept) and all(len(e.payload["images"]) == 1 for e in events.values())
    assert all(e.payload["charged_usd"] == "0.007200" for e in events.values())
    assert Generation.objects.get(public_id=kept[0]).charged_micros == LOW_SQUARE_PRICE_MICROS
    assert wallet_drifts() == []


def test_a_batch_that_fails_half_way_is_rolled_back_and_its_retry_captures_once(
    make_customer, roomy_plan, monkeypatch
) -> None:
    customer = make_customer(plan=roomy_plan)
    ids = [generation_post(customer, prompt=f"retried {i}")["id"] for i in range(3)]
    claims = _claims()
    successes = [Success(claim=claims[pid], outputs=[_output(pid)]) for pid in ids]
    notify = finish.notify_generations_finished
    failures = iter([OperationalError("server closed the connection unexpectedly")])

    def notify_once_failing(**kwargs: object) -> None:
        if (error := next(failures, None)) is not None:
            raise error  # the last statement of the batch: everything before it is rolled back
        notify(**kwargs)

    monkeypatch.setattr(finish, "notify_generations_finished", notify_once_failing)
    with pytest.raises(OperationalError):
        generations_succeed(successes=successes)
    assert customer.ledger() == [("hold", 7_200)] * 3
    assert set(Generation.objects.filter(public_id__in=ids).values_list("status", flat=True)) == {"running"}

    first = generations_succeed(successes=successes)
    again = generations_succeed(successes=successes)  # e.g. the commit's answer was lost: the retry finds nothing

    assert {row.status for row in first.values()} == {"succeeded"}
    assert set(again.values()) == {None}
    assert LedgerEntry.objects.filter(reference__in=ids, kind="capture").count() == 3
    assert customer.wallet().balance_micros == 50_000_000 - 3 * LOW_SQUARE_PRICE_MICROS
    assert wallet_drifts() == []


def test_billing_capture_many_captures_each_hold_once_and_refuses_an_unknown_one(make_customer, roomy_plan) -> None:
    customer = make_customer(plan=roomy_plan)
    first, second = (generation_post(customer, prompt=f"hold {i}")["id"] for i in range(2))

    with pytest.raises(HoldNotFound):
        billing_capture_many(captures=[Capture(reference=first, images=1), Capture(reference="gen_nope", images=1)])
    assert customer.ledger() == [("hold", 7_200)] * 2  # nothing of the refused batch was written

    done = billing_capture_many(captures=[Capture(reference=first, images=1), Capture(reference=first, images=1),
                                          Capture(reference=second, images=5)])
    later = billing_capture_many(captures=[Capture(reference=second, images=1)])

    assert (done[first].amount_micros, done[second].amount_micros) == (7_200, 7_200)  # never above the hold
    assert later == {second: None}
    assert LedgerEntry.objects.filter(kind="capture").count() == 2
    assert wallet_drifts() == []


@pytest.mark.django_db(transaction=True)  # the forwarder's database threads must see the submitted rows
def test_a_member_that_fails_alone_does_not_hold_back_its_batch(make_customer, roomy_plan, forwarding,
                                                                monkeypatch, settings) -> None:
    settings.FORWARD_SETTLE_BATCH_SECONDS = 0.5  # the four answers meet in one batch
    customer = make_customer(plan=roomy_plan)
    fine = [generation_post(customer, prompt=f"fine {i}")["id"] for i in range(3)]
    poisoned = generation_post(customer, prompt="poisoned")["id"]
    real = settling.generations_succeed
    batches: list[set[str]] = []

    def poisoned_breaks(*, successes):
        members = {success.claim.public_id for success in successes}
        batches.append(members)
        if poisoned in members:
            raise RuntimeError("a bug this generation hits")
        return real(successes=successes)

    monkeypatch.setattr(settling, "generations_succeed", poisoned_breaks)
    forward_drain()

    assert set(Generation.objects.filter(public_id__in=fine).values_list("status", flat=True)) == {"succeeded"}
    assert [customer.ledger(pid) for pid in fine] == [[("hold", 7_200), ("capture", 7_200)]] * 3
    failed = Generation.objects.get(public_id=poisoned)
    assert (failed.status, failed.charged_micros) == ("failed", 0)  # retried until its attempts ran out
    assert customer.ledger(poisoned) == [("hold", 7_200), ("release", 7_200)]
    assert any(poisoned in members and members & set(fine) for members in batches)  # it did share a batch
    assert wallet_drifts() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_forwarders_draining_many_tenants_at_once_keep_the_ledger_equal_to_the_wallets(
    make_customer, roomy_plan, forwarding
) -> None:
    customers = [make_customer(f"tenant-{i}", plan=roomy_plan) for i in range(3)]
    ids = [generation_post(customers[i % 3], prompt=f"drain {i}")["id"] for i in range(45)]

    stats = run_in_threads(2, lambda index: forward_drain(concurrency=12))

    assert all(not isinstance(result, Exception) for result in stats), stats
    assert sum(result.claimed for result in stats) == 45
    assert Generation.objects.filter(public_id__in=ids, status="succeeded").count() == 45
    assert LedgerEntry.objects.filter(reference__in=ids, kind="capture").count() == 45
    assert forwarding.calls["predictions"] == 45
    for customer in customers:
        assert customer.wallet().balance_micros == 50_000_000 - 15 * LOW_SQUARE_PRICE_MICROS
    assert wallet_drifts() == []
