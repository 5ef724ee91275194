"""A retry with the same Idempotency-Key (a client whose connection dropped) is told the generation as it is now —
status, images, charges — never the first answer's stale snapshot, and charged nothing more. Over real HTTP against
a live server with a forwarder draining in the background."""

import httpx
import pytest

from generations.models import Generation
from tests.generations.processes import wait_until
from tests.generations.support import LOW_SQUARE, LOW_SQUARE_PRICE_MICROS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(make_customer, background_forwarder, live_server):
    customer = make_customer()
    with httpx.Client(base_url=f"{live_server.url}/v1", timeout=60,
                      headers={"Authorization": f"Bearer {customer.key.secret}"}) as client:
        yield customer, client


def submit(client: httpx.Client, *, key: str, prompt: str, wait: int | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key, **({"Prefer": f"wait={wait}"} if wait else {})}
    return client.post("/generations", json={**LOW_SQUARE, "prompt": prompt}, headers=headers)


def test_a_retry_after_a_finished_wait_answers_the_finished_generation(api) -> None:
    customer, client = api
    first = submit(client, key="order-1", prompt="a lighthouse", wait=30)
    assert first.status_code == 200 and first.json()["status"] == "succeeded"

    retried = submit(client, key="order-1", prompt="a lighthouse", wait=30)

    assert retried.status_code == 200 and retried.headers["Idempotent-Replayed"] == "true"
    body = retried.json()
    assert body["id"] == first.json()["id"] and body["status"] == "succeeded"
    assert len(body["images"]) == 1 and httpx.get(body["images"][0]["url"], timeout=10).status_code == 200
    assert body["charged_usd"] == "0.007200"
    assert customer.ledger() == [("hold", LOW_SQUARE_PRICE_MICROS), ("capture", LOW_SQUARE_PRICE_MICROS)]


def test_a_retry_without_wait_of_a_finished_generation_is_200_with_its_images(api) -> None:
    """The first answer was 202 (queued); by the retry it has finished: 202 "still processing" would be false."""
    customer, client = api
    first = submit(client, key="order-2", prompt="a kite")
    assert first.status_code == 202 and first.json()["status"] == "queued"
    assert wait_until(lambda: Generation.objects.get().status == "succeeded", timeout=30)
    done = client.get(f"/generations/{first.json()['id']}")

    retried = submit(client, key="order-2", prompt="a kite")

    assert retried.status_code == 200 and retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json() == done.json() | {"images": retried.json()["images"]}  # signed URLs differ per render
    assert [image["index"] for image in retried.json()["images"]] == [0]
    assert Generation.objects.count() == 1
    assert customer.ledger() == [("hold", LOW_SQUARE_PRICE_MICROS), ("capture", LOW_SQUARE_PRICE_MICROS)]


def test_a_retry_with_wait_while_the_generation_runs_waits_for_it(api, aihubmix_sandbox) -> None:
    customer, client = api
    aihubmix_sandbox.latency = 2.0
    first = submit(client, key="order-3", prompt="a slow one")
    assert first.status_code == 202

    retried = submit(client, key="order-3", prompt="a slow one", wait=30)

    assert retried.status_code == 200, retried.json()
    assert retried.headers["Idempotent-Replayed"] == "true" and retried.headers["Preference-Applied"] == "wait=30"
    assert retried.json()["status"] == "succeeded" and len(retried.json()["images"]) == 1
    assert customer.ledger() == [("hold", LOW_SQUARE_PRICE_MICROS), ("capture", LOW_SQUARE_PRICE_MICROS)]


def test_a_retry_while_the_generation_is_queued_is_202_as_it_is_now(api, aihubmix_sandbox) -> None:
    _, client = api
    aihubmix_sandbox.latency = 5.0
    first = submit(client, key="order-4", prompt="still going")

    retried = submit(client, key="order-4", prompt="still going")

    assert retried.status_code == 202 and retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json()["id"] == first.json()["id"]
    assert retried.json()["status"] in ("queued", "running") and retried.json()["images"] == []
