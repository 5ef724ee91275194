"""Waiting clients cost no thread: real web (gunicorn + uvicorn worker) and forwarder processes, one tenant holding
its plan's maximum of slow waits while another tenant's requests keep answering at once; over the cap the native
API answers 202 without waiting and /v1/images/* 429 with Retry-After, creating nothing."""

import os
import threading
import time

import httpx
import pytest
import redis
from django.db import connections

from billing.models import Plan
from generations.models import Generation
from generations.services import waits
from generations.services.waits import wait_slot_acquire, wait_slot_release, wait_slots_in_use
from tests.generations.processes import (
    forwarder,
    free_port,
    gunicorn,
    stack_environment,
    wait_http,
    wait_until,
)
from tests.generations.support import LOW_SQUARE

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_CAP = 10  # more than the 8 threads the sync web tier had in all


@pytest.mark.slow
@pytest.mark.postgres
def test_a_tenant_at_its_wait_cap_does_not_slow_another_tenant(make_customer, aihubmix_sandbox, tmp_path) -> None:
    greedy = make_customer("greedy", plan=Plan.objects.create(
        name="waity", max_concurrent=None, max_queued=None, max_concurrent_waits=WAIT_CAP))
    other = make_customer("other")
    aihubmix_sandbox.latency = 12.0
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = stack_environment(sandbox=aihubmix_sandbox, media_root=tmp_path / "media")
    with gunicorn(env=env, port=port, log=tmp_path / "web.log"), forwarder(env=env, log=tmp_path / "fwd.log"):
        wait_http(f"{base}/healthz")
        greedy_headers = {"Authorization": f"Bearer {greedy.key.secret}"}
        other_headers = {"Authorization": f"Bearer {other.key.secret}"}
        answers: list[httpx.Response | Exception] = []

        def hold_a_wait(number: int) -> None:
            try:
                answers.append(httpx.post(
                    f"{base}/v1/generations", json={**LOW_SQUARE, "prompt": f"slow {number}"},
                    headers={**greedy_headers, "Prefer": "wait=60"}, timeout=90))
            except httpx.HTTPError as error:  # the server is stopped at the end of the test
                answers.append(error)

        waiters = [threading.Thread(target=hold_a_wait, args=(number,), daemon=True) for number in range(WAIT_CAP)]
        for waiter in waiters:
            waiter.start()
        # every wait is open: its generation is at the (slow) upstream
        assert wait_until(lambda: aihubmix_sandbox.calls["predictions"] >= WAIT_CAP, timeout=20), (
            (tmp_path / "fwd.log").read_text()[-2000:])

        # Another tenant: normal latency while the greedy tenant's waits are all pending.
        for _ in range(3):
            started = time.monotonic()
            quota = httpx.get(f"{base}/v1/quota", headers=other_headers, timeout=30)
            assert quota.status_code == 200
            assert time.monotonic() - started < 2
            started = time.monotonic()
            submitted = httpx.post(f"{base}/v1/generations", json={**LOW_SQUARE, "prompt": "mine"},
                                   headers=other_headers, timeout=30)
            assert submitted.status_code == 202
            assert time.monotonic() - started < 2

        # Over the cap, the native API answers at once without waiting (and says the wait was not applied) …
        started = time.monotonic()
        over = httpx.post(f"{base}/v1/generations", json={**LOW_SQUARE, "prompt": "one too many"},
                          headers={**greedy_headers, "Prefer": "wait=60"}, timeout=30)
        assert time.monotonic() - started < 2
        assert over.status_code == 202 and over.json()["status"] in ("queued", "running")
        assert "Preference-Applied" not in over.headers
        # … and the OpenAI-compatible one refuses with 429 and Retry-After, creating nothing.
        before = Generation.objects.filter(tenant=greedy.tenant).count()
        refused = httpx.post(f"{base}/v1/images/generations", json={**LOW_SQUARE, "model": "gpt-image-2",
                             "prompt": "refused"}, headers=greedy_headers, timeout=30)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.json()["error"]["code"] == "too_many_waits"
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert Generation.objects.filter(tenant=greedy.tenant).count() == before

        assert all(waiter.is_alive() for waiter in waiters) and not answers  # still waiting all along

        # The waits end with their generations: 200 with the finished generation and Preference-Applied.
        aihubmix_sandbox.latency = 0.0
        for waiter in waiters:
            waiter.join(timeout=60)
        assert len(answers) == WAIT_CAP
        assert all(isinstance(answer, httpx.Response) and answer.status_code == 200 for answer in answers), [
            getattr(answer, "text", answer) for answer in answers]
        assert {answer.headers["Preference-Applied"] for answer in answers} == {"wait=60"}
        assert {answer.json()["status"] for answer in answers} == {"succeeded"}

        # the slots were given back: the greedy tenant can wait again
        again = httpx.post(f"{base}/v1/generations", json={**LOW_SQUARE, "prompt": "again"},
                           headers={**greedy_headers, "Prefer": "wait=30"}, timeout=60)
        assert again.status_code == 200 and again.headers["Preference-Applied"] == "wait=30"


@pytest.fixture(params=["database", "redis"])
def slot_store(request, settings):
    if request.param == "redis":
        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1).ping()
        except redis.RedisError:
            if os.environ.get("CI"):
                raise
            pytest.skip("Redis is not reachable")
        # Redis outlives the test database, whose tenant ids start again at 1: forget slots of earlier runs
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(f"{waits._scope()}:*"):
            client.delete(key)
    settings.Q_BROKER = "redis" if request.param == "redis" else "orm"
    return request.param


@pytest.mark.slow  # waits for slots to expire
def test_wait_slots_are_capped_per_tenant_given_back_and_expire_by_themselves(slot_store, make_customer,
                                                                               monkeypatch) -> None:
    capped = make_customer("capped", plan=Plan.objects.create(name="two-waits", max_concurrent_waits=2))
    other = make_customer("other", plan=Plan.objects.create(name="one-wait", max_concurrent_waits=1))
    first = wait_slot_acquire(tenant=capped.tenant, seconds=60)
    second = wait_slot_acquire(tenant=capped.tenant, seconds=60)
    assert first is not None and second is not None and first.store == second.store == slot_store
    assert wait_slot_acquire(tenant=capped.tenant, seconds=60) is None
    assert wait_slots_in_use(tenant=capped.tenant) == 2
    others = wait_slot_acquire(tenant=other.tenant, seconds=60)
    assert others is not None  # per tenant
    wait_slot_release(slot=others)
    wait_slot_release(slot=first)
    third = wait_slot_acquire(tenant=capped.tenant, seconds=60)
    assert third is not None
    wait_slot_release(slot=second)
    wait_slot_release(slot=third)

    # A waiter that crashed never gives its slot back: it expires after the wait plus the margin.
    monkeypatch.setattr(waits, "SLOT_MARGIN_SECONDS", 2)
    assert wait_slot_acquire(tenant=capped.tenant, seconds=0) is not None
    assert wait_slot_acquire(tenant=capped.tenant, seconds=0) is not None
    assert wait_slot_acquire(tenant=capped.tenant, seconds=0) is None
    time.sleep(2.2)
    assert wait_slots_in_use(tenant=capped.tenant) == 0
    assert wait_slot_acquire(tenant=capped.tenant, seconds=0) is not None

    # A plan without a cap never refuses a wait, and its waits are counted all the same.
    unlimited = make_customer("unlimited", plan=Plan.objects.create(name="any-waits", max_concurrent_waits=None))
    slots = [wait_slot_acquire(tenant=unlimited.tenant, seconds=60) for _ in range(12)]
    assert all(slot is not None for slot in slots) and wait_slots_in_use(tenant=unlimited.tenant) == 12
    for slot in slots:
        wait_slot_release(slot=slot)  # type: ignore[arg-type]
    assert wait_slots_in_use(tenant=unlimited.tenant) == 0


def test_a_plan_without_waits_never_waits(make_customer) -> None:
    customer = make_customer("nowait", plan=Plan.objects.create(name="no-waits", max_concurrent_waits=0))
    assert wait_slot_acquire(tenant=customer.tenant, seconds=10) is None
    response = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "x"}, format="json",
                                    HTTP_PREFER="wait=10")
    assert response.status_code == 202 and "Preference-Applied" not in response
    openai = customer.client.post("/v1/images/generations", {**LOW_SQUARE, "model": "gpt-image-2", "prompt": "x"},
                                  format="json")
    assert openai.status_code == 429 and openai["Retry-After"] == "5"
    error = openai.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("rate_limit_error", None, "too_many_waits")
    assert Generation.objects.filter(tenant=customer.tenant).count() == 1  # the native one only


RACE_CAP = 3
RACE_THREADS = 8
RACE_ROUNDS = 40


@pytest.mark.slow  # forty rounds of eight threads
@pytest.mark.postgres
def test_concurrent_acquirers_never_exceed_the_cap_while_slots_expire(make_customer, settings, monkeypatch) -> None:
    """Without Redis: every round starts with the tenant's slots all taken but just expired (a crashed waiter's),
    then 8 threads ask for a slot at once. Exactly the cap is granted, never more (an expired slot is handed out
    once)."""
    settings.Q_BROKER = "orm"
    tenant = make_customer("racy", plan=Plan.objects.create(name="three-waits", max_concurrent_waits=RACE_CAP)).tenant
    start = threading.Barrier(RACE_THREADS + 1)
    done = threading.Barrier(RACE_THREADS + 1)
    granted: list[list[waits.WaitSlot]] = [[] for _ in range(RACE_ROUNDS)]
    failures: list[BaseException] = []

    def acquirer() -> None:
        try:
            for number in range(RACE_ROUNDS):
                start.wait()
                slot = wait_slot_acquire(tenant=tenant, seconds=60)
                if slot is not None:
                    granted[number].append(slot)
                done.wait()
        except BaseException as error:
            failures.append(error)
            start.abort()
            done.abort()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=acquirer, daemon=True) for _ in range(RACE_THREADS)]
    for thread in threads:
        thread.start()
    try:
        for number in range(RACE_ROUNDS):
            monkeypatch.setattr(waits, "SLOT_MARGIN_SECONDS", 0)  # a wait of 0 s: expired as soon as taken
            crashed = [wait_slot_acquire(tenant=tenant, seconds=0) for _ in range(RACE_CAP)]
            assert all(slot is not None for slot in crashed)
            monkeypatch.setattr(waits, "SLOT_MARGIN_SECONDS", 30)
            time.sleep(0.01)
            start.wait(timeout=30)
            done.wait(timeout=30)
            for slot in granted[number]:
                wait_slot_release(slot=slot)
    finally:
        start.abort()
        done.abort()
        for thread in threads:
            thread.join(timeout=30)
    assert not failures, failures
    assert [len(slots) for slots in granted] == [RACE_CAP] * RACE_ROUNDS
