"""The whole stack as separate processes: web + forwarder + the sandbox, on both brokers, and a forwarder killed
mid-generation."""

import os
import time

import httpx
import pytest
import redis

from billing.models import LedgerEntry
from generations.models import Generation
from generations.services.leases import generations_reap
from tests.generations.processes import (
    forwarder,
    free_port,
    gunicorn,
    kill,
    stack_environment,
    wait_http,
    wait_until,
)
from tests.generations.support import LOW_SQUARE

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def redis_available() -> bool:
    from django.conf import settings

    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.parametrize(
    "broker",
    [
        "orm",
        # Under CI (.ci/run starts Redis) an unreachable Redis must fail, never skip.
        pytest.param("redis", marks=pytest.mark.skipif(
            not os.environ.get("CI") and not redis_available(), reason="Redis is not reachable")),
    ],
)
def test_generation_succeeds_through_the_web_and_a_forwarder_process(
    broker, make_customer, aihubmix_sandbox, tmp_path
) -> None:
    customer = make_customer()
    port = free_port()
    env = stack_environment(sandbox=aihubmix_sandbox, media_root=tmp_path / "media", Q_BROKER=broker)
    with gunicorn(env=env, port=port, log=tmp_path / "web.log"), forwarder(env=env, log=tmp_path / "fwd.log"):
        wait_http(f"http://127.0.0.1:{port}/healthz")
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/generations",
            json={**LOW_SQUARE, "prompt": f"through {broker}"},
            headers={"Authorization": f"Bearer {customer.key.secret}", "Prefer": "wait=40"},
            timeout=60,
        )
        body = response.json()
        assert response.status_code == 200, (body, (tmp_path / "fwd.log").read_text()[-3000:])
        assert body["status"] == "succeeded", body["error"]
        image = httpx.get(body["images"][0]["url"], timeout=10)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert (tmp_path / "media" / Generation.objects.get().images.get().storage_key).exists()
    assert customer.ledger(body["id"]) == [("hold", 7_200), ("capture", 7_200)]


def test_forwarder_killed_mid_generation_is_recovered_and_charged_once(
    make_customer, aihubmix_sandbox, tmp_path
) -> None:
    customer = make_customer()
    aihubmix_sandbox.latency = 3.0
    env = stack_environment(
        sandbox=aihubmix_sandbox, media_root=tmp_path / "media", FORWARD_LEASE_SECONDS="2",
        FORWARD_REAP_SECONDS="3600",  # this test reaps by hand
    )
    created = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "survive"}, format="json").json()

    with forwarder(env=env, log=tmp_path / "fwd-1.log") as first:
        assert wait_until(lambda: Generation.objects.get().status == "running", timeout=30)
        assert wait_until(lambda: aihubmix_sandbox.calls["predictions"] == 1, timeout=10)
        kill(first)
    assert Generation.objects.get().status == "running"

    time.sleep(2.5)  # the dead forwarder's lease expires
    aihubmix_sandbox.latency = 0.0
    result = generations_reap()
    assert result.requeued == 1
    with forwarder(env=env, log=tmp_path / "fwd-2.log"):
        assert wait_until(lambda: Generation.objects.get().status == "succeeded", timeout=40)

    generation = Generation.objects.get()
    assert generation.attempts == 2 and generation.unknown_outcomes == 1
    assert customer.ledger(created["id"]) == [("hold", 7_200), ("capture", 7_200)]
    capture = LedgerEntry.objects.get(reference=created["id"], kind="capture")
    assert capture.cost_micros == 2 * 6_000, "the lost first call may have been charged: recorded as our cost"
