"""Deadlines (`Cancel-After`, header or `cancel_after` in the body) and the `generation.started` webhook event.

What a client notices: a bad duration is a 400 naming it with nothing created or held; a generation that could not
start in time ends `canceled` / `deadline_exceeded` with its hold released and no upstream call; one still running
at its deadline is canceled as a tenant's cancel is; a webhook that asked for `start` gets a signed delivery of the
generation when it begins running, once."""

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_q.conf import Conf
from pytest_httpserver import HTTPServer
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from accounts.services import SYSTEM, api_key_create
from billing.models import LedgerEntry, Plan
from generations.forwarder import forward_drain, loop
from generations.models import Generation
from generations.services.cancel import generation_settle_canceled
from generations.services.deadlines import generations_deadlines_enforce
from generations.services.leases import generation_claim_batch
from tests.generations.processes import (
    forwarder,
    free_port,
    gunicorn,
    stack_environment,
    wait_http,
    wait_until,
)
from tests.generations.support import LOW_SQUARE, Customer, nothing_changed
from webhooks.models import WebhookDelivery, WebhookEvent
from webhooks.services.endpoints import webhook_endpoint_create
from webhooks.tasks import deliver_due_webhooks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def customer(make_customer, forwarding, settings) -> Customer:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True  # the receiver lives on loopback
    settings.WEBHOOKS_RETRY_SCHEDULE_SECONDS = [0, 0]
    settings.PUBLIC_BASE_URL = "http://testserver"
    return make_customer()


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def post(customer: Customer, headers: dict | None = None, **fields):
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in (headers or {}).items()}
    return customer.client.post(
        "/v1/generations", {**LOW_SQUARE, "prompt": "a lighthouse", **fields}, format="json", **extra
    )


def expire(public_id: str) -> None:
    """The deadline has passed (instead of sleeping through the 5 s minimum)."""
    Generation.objects.filter(public_id=public_id).update(deadline_at=timezone.now() - timedelta(milliseconds=1))


# --- the duration -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1.5h", 5400), ("90", 90), ("2m30s", 150), ("24h", 86400),
     ("5000ms", 5), (" 10S ", 10)],
)
def test_cancel_after_durations_set_the_deadline_from_the_submit(customer: Customer, value, seconds) -> None:
    before = timezone.now()
    response = post(customer, headers={"Cancel-After": value})
    assert response.status_code == 202, response.json()
    deadline = parse_datetime(response.json()["deadline_at"])
    assert before + timedelta(seconds=seconds) <= deadline <= timezone.now() + timedelta(seconds=seconds)
    assert customer.client.get(f"/v1/generations/{response.json()['id']}").json()["deadline_at"] == (
        response.json()["deadline_at"]
    )


def test_without_cancel_after_there_is_no_deadline(customer: Customer) -> None:
    response = post(customer)
    assert response.status_code == 202 and response.json()["deadline_at"] is None


@pytest.mark.parametrize(
    ("headers", "fields", "param"),
    [
        ({"Cancel-After": "soon"}, {}, "Cancel-After"),
        ({"Cancel-After": "5x"}, {}, "Cancel-After"),
        ({"Cancel-After": ""}, {}, "Cancel-After"),
        ({"Cancel-After": "-10s"}, {}, "Cancel-After"),
        ({"Cancel-After": "1h 30m"}, {}, "Cancel-After"),
        ({"Cancel-After": "0.5s"}, {}, "Cancel-After"),  # under CANCEL_AFTER_MIN_SECONDS (1 s)
        ({"Cancel-After": "24h1s"}, {}, "Cancel-After"),  # over CANCEL_AFTER_MAX_SECONDS
        ({"Cancel-After": "0"}, {}, "Cancel-After"),
        ({}, {"cancel_after": "later"}, "cancel_after"),
        ({}, {"cancel_after": 0.5}, "cancel_after"),  # under the minimum
        ({}, {"cancel_after": True}, "cancel_after"),
        ({"Cancel-After": "30s"}, {"cancel_after": "1m"}, "cancel_after"),  # two different deadlines
    ],
)
def test_a_bad_cancel_after_is_400_naming_it_and_nothing_is_created_or_held(
    customer: Customer, headers, fields, param
) -> None:
    response = post(customer, headers=headers, **fields)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_cancel_after", param)
    assert nothing_changed(customer)


def test_cancel_after_in_the_body_works_alone_or_agreeing_with_the_header(customer: Customer) -> None:
    alone = post(customer, cancel_after="1m")
    both = post(customer, headers={"Cancel-After": "60s"}, cancel_after=60)
    assert alone.status_code == both.status_code == 202
    for body in (alone.json(), both.json()):
        created = parse_datetime(body["created_at"])
        assert timedelta(seconds=59) < parse_datetime(body["deadline_at"]) - created < timedelta(seconds=61)


def test_the_openai_endpoint_refuses_a_bad_cancel_after_in_its_error_shape(customer: Customer) -> None:
    response = customer.client.post(
        "/v1/images/generations", {"model": "gpt-image-2", "prompt": "x", "quality": "low", "size": "1024x1024"},
        format="json", HTTP_CANCEL_AFTER="forever",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"], error["type"]) == (
        "invalid_cancel_after", "Cancel-After", "invalid_request_error"
    )
    assert nothing_changed(customer)


def test_the_schema_documents_the_header_the_body_field_and_deadline_at(customer: Customer) -> None:
    schema = APIClient().get("/v1/schema/?format=json").json()
    create = schema["paths"]["/v1/generations"]["post"]
    assert "Cancel-After" in {p["name"] for p in create["parameters"] if p["in"] == "header"}
    openai = schema["paths"]["/v1/images/generations"]["post"]
    assert "Cancel-After" in {p["name"] for p in openai["parameters"] if p["in"] == "header"}
    components = schema["components"]["schemas"]
    assert "cancel_after" in components["GenerationCreateRequest"]["properties"]
    assert "cancel_after" in components["OpenAIImageRequestRequest"]["properties"]
    assert "deadline_at" in components["Generation"]["properties"]


# --- enforcing it -------------------------------------------------------------------------------------------


def test_a_queued_generation_past_its_deadline_is_never_claimed_and_is_canceled_free(customer: Customer) -> None:
    created = post(customer, headers={"Cancel-After": "5s"}).json()
    expire(created["id"])

    assert generation_claim_batch(limit=10, lease_seconds=30) == []  # never sent, even before the sweep
    sweep = generations_deadlines_enforce()

    assert len(sweep.canceled) == 1 and sweep.running == []
    body = customer.client.get(f"/v1/generations/{created['id']}").json()
    assert body["status"] == "canceled" and body["charged_usd"] == "0.000000"
    assert body["error"]["code"] == "deadline_exceeded"
    assert customer.ledger(created["id"]) == [("hold", 7_200), ("release", 7_200)]
    assert customer.wallet().held_micros == 0
    assert WebhookEvent.objects.filter(type="generation.canceled").count() == 1
    assert generations_deadlines_enforce().canceled == []  # once


def test_a_generation_ahead_of_its_deadline_runs_normally(customer: Customer) -> None:
    created = post(customer, headers={"Cancel-After": "1m"}).json()
    assert generations_deadlines_enforce().canceled == []
    forward_drain()
    assert Generation.objects.get(public_id=created["id"]).status == "succeeded"


def test_a_running_generation_at_its_deadline_is_canceled_like_a_tenants_cancel(customer: Customer) -> None:
    created = post(customer, headers={"Cancel-After": "5s"}).json()
    [claim] = generation_claim_batch(limit=10, lease_seconds=30)
    expire(created["id"])

    sweep = generations_deadlines_enforce()
    assert sweep.running == [claim.id] and sweep.canceled == []
    assert customer.client.get(f"/v1/generations/{created['id']}").json()["cancel_requested"] is True

    # The forwarder stopped the call it had sent: settled as any cancel of a running call.
    generation_settle_canceled(claim=claim, call_abandoned=True)
    body = customer.client.get(f"/v1/generations/{created['id']}").json()
    assert body["status"] == "canceled" and body["error"]["code"] == "deadline_exceeded"
    assert customer.ledger(created["id"]) == [("hold", 7_200), ("release", 7_200)]
    assert LedgerEntry.objects.get(reference=created["id"], kind="release").cost_micros == 6_000


def test_a_running_generation_that_answers_after_its_deadline_pays_the_upstream_cost(
    customer: Customer, monkeypatch
) -> None:
    """The deadline passes right after the claim (the sweep asks for the cancel before the call is back): canceled,
    as a tenant's cancel while running, and the code says why."""
    created = post(customer, headers={"Cancel-After": "5s"}).json()
    real_claim = loop.generation_claim_batch

    def claim_then_expire(**kwargs):
        claims = real_claim(**kwargs)
        if claims:
            expire(created["id"])
            generations_deadlines_enforce()
        return claims

    monkeypatch.setattr(loop, "generation_claim_batch", claim_then_expire)
    forward_drain()
    body = customer.client.get(f"/v1/generations/{created['id']}").json()
    assert body["status"] == "canceled" and body["error"]["code"] == "deadline_exceeded"
    assert customer.ledger(created["id"]) in (
        [("hold", 7_200), ("capture", 6_000)],  # the answer came first: its cost, no margin
        [("hold", 7_200), ("release", 7_200)],  # the call was stopped first
    )


def test_a_tenants_cancel_after_the_deadline_request_keeps_the_deadline_code(customer: Customer) -> None:
    created = post(customer, headers={"Cancel-After": "5s"}).json()
    [claim] = generation_claim_batch(limit=10, lease_seconds=30)
    expire(created["id"])
    generations_deadlines_enforce()
    assert customer.client.post(f"/v1/generations/{created['id']}/cancel").status_code == 200
    generation_settle_canceled(claim=claim)
    assert Generation.objects.get(public_id=created["id"]).error_code == "deadline_exceeded"


# --- the start event ---------------------------------------------------------------------------------------


def run_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Conf, "SYNC", True)  # the webhook tasks queued on commit run inline
    forward_drain()


def test_a_request_webhook_asking_for_start_gets_the_running_generation_signed_then_the_end(
    customer: Customer, receiver: HTTPServer, monkeypatch
) -> None:
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    created = post(
        customer, webhook=receiver.url_for("/hook"), webhook_events_filter=["start", "generation.succeeded"]
    ).json()
    assert created["webhook_events_filter"] == ["generation.started", "generation.succeeded"]

    run_worker(monkeypatch)

    admin = APIClient()
    admin.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=customer.tenant, name='ops', is_admin=True).secret}")
    secret = admin.get("/v1/webhook-secret").json()["secret"]
    bodies = [Webhook(secret).verify(request.get_data(), dict(request.headers)) for request, _ in receiver.log]
    assert [body["status"] for body in bodies] == ["running", "succeeded"]
    assert bodies[0]["id"] == created["id"] and bodies[0]["started_at"] is not None and bodies[0]["images"] == []
    started = WebhookEvent.objects.get(type="generation.started")
    assert receiver.log[0][0].headers["webhook-id"] == started.id


def test_start_is_opt_in_for_endpoints_and_request_webhooks(
    customer: Customer, receiver: HTTPServer, monkeypatch
) -> None:
    receiver.expect_request("/all").respond_with_data("ok")
    receiver.expect_request("/start").respond_with_data("ok")
    everything = webhook_endpoint_create(
        tenant=customer.tenant, url=receiver.url_for("/all"), event_types=[], actor=SYSTEM
    ).endpoint
    starts = webhook_endpoint_create(
        tenant=customer.tenant, url=receiver.url_for("/start"), event_types=["start"], actor=SYSTEM
    ).endpoint
    assert starts.event_types == ["generation.started"]
    created = post(customer, webhook=receiver.url_for("/request")).json()  # default filter: the terminal events
    assert "generation.started" not in created["webhook_events_filter"]

    run_worker(monkeypatch)

    received = {(request.path, Webhook(
        (everything if request.path == "/all" else starts).secret).verify(request.get_data(), dict(request.headers)
    )["type"]) for request, _ in receiver.log if request.path != "/request"}
    assert received == {("/all", "generation.succeeded"), ("/start", "generation.started")}
    assert WebhookDelivery.objects.filter(url=receiver.url_for("/request"), event__type="generation.started").count() == 0


def test_no_start_event_is_recorded_when_nobody_asked_for_it(customer: Customer, monkeypatch) -> None:
    post(customer)
    run_worker(monkeypatch)
    assert not WebhookEvent.objects.filter(type="generation.started").exists()


def test_a_retried_generation_starts_once(customer: Customer, receiver: HTTPServer, monkeypatch) -> None:
    receiver.expect_request("/hook").respond_with_data("ok")
    post(customer, prompt="flaky [fault:500-once]", webhook=receiver.url_for("/hook"), webhook_events_filter=["start"])
    run_worker(monkeypatch)
    generation = Generation.objects.get()
    assert (generation.status, generation.attempts) == ("succeeded", 2)
    assert WebhookEvent.objects.filter(type="generation.started").count() == 1


def test_endpoints_api_accepts_start(customer: Customer, receiver: HTTPServer) -> None:
    admin = APIClient()
    admin.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=customer.tenant, name='ops', is_admin=True).secret}")
    response = admin.post(
        "/v1/webhook-endpoints", {"url": receiver.url_for("/x"), "events": ["start"]}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["events"] == ["generation.started"]


# --- the real stack -----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_deadlines_and_the_start_event_through_web_forwarder_and_sandbox(
    make_customer, aihubmix_sandbox, tmp_path, receiver: HTTPServer, settings, monkeypatch
) -> None:
    """Plan max_concurrent=1. The first generation hangs upstream with `Cancel-After: 6s` and a `start` webhook;
    the second (`Cancel-After: 2s`) waits behind it and ends canceled/deadline_exceeded, released, never sent; at
    6 s the first is canceled while running, like a tenant's cancel."""
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOKS_RETRY_SCHEDULE_SECONDS = [0, 0]
    plan = Plan.objects.create(name="one-at-a-time", markup_bps=2000, max_n=10, max_concurrent=1)
    customer = make_customer(plan=plan)
    receiver.expect_request("/hook").respond_with_data("ok")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = stack_environment(
        sandbox=aihubmix_sandbox, media_root=tmp_path / "media", WEBHOOKS_ALLOW_PRIVATE_TARGETS="true",
        FORWARD_CANCEL_POLL_SECONDS="30",  # the running one is stopped by the sweep, not the poll
    )
    headers = {"Authorization": f"Bearer {customer.key.secret}"}
    with gunicorn(env=env, port=port, log=tmp_path / "web.log"), forwarder(env=env, log=tmp_path / "fwd.log"):
        wait_http(f"{base}/healthz")
        first = httpx.post(
            f"{base}/v1/generations",
            json={**LOW_SQUARE, "prompt": "long first [fault:hang]", "webhook": receiver.url_for("/hook"),
                  "webhook_events_filter": ["start"]},
            headers={**headers, "Cancel-After": "6s"}, timeout=30,
        )
        assert first.status_code == 202, first.text
        assert wait_until(lambda: aihubmix_sandbox.calls["fault:hang"] == 1, timeout=30)
        second = httpx.post(
            f"{base}/v1/generations", json={**LOW_SQUARE, "prompt": "behind the cap"},
            headers={**headers, "Cancel-After": "2s"}, timeout=30,
        )
        assert second.status_code == 202, second.text
        second_id, first_id = second.json()["id"], first.json()["id"]
        deadline = parse_datetime(second.json()["deadline_at"])

        def status_of(public_id: str) -> str:
            return httpx.get(f"{base}/v1/generations/{public_id}", headers=headers, timeout=10).json()["status"]

        assert wait_until(lambda: status_of(second_id) == "canceled", timeout=10)
        ended = Generation.objects.get(public_id=second_id)
        assert ended.finished_at - deadline < timedelta(seconds=1.5), "swept within ~1 s of its deadline"
        assert wait_until(lambda: status_of(first_id) == "canceled", timeout=15)
        bad = httpx.post(f"{base}/v1/generations", json={**LOW_SQUARE, "prompt": "bad"},
                         headers={**headers, "Cancel-After": "1 fortnight"}, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cancel_after"
        bodies = {
            public_id: httpx.get(f"{base}/v1/generations/{public_id}", headers=headers, timeout=10).json()
            for public_id in (first_id, second_id)
        }

    assert bodies[second_id]["error"]["code"] == "deadline_exceeded"
    assert bodies[first_id]["error"]["code"] == "deadline_exceeded"
    assert [r for r in aihubmix_sandbox.requests if "behind the cap" in str(r.json or r.form)] == []
    assert customer.ledger(second_id) == [("hold", 7_200), ("release", 7_200)]
    assert customer.ledger(first_id) == [("hold", 7_200), ("release", 7_200)]  # no image came back
    assert LedgerEntry.objects.get(reference=first_id, kind="release").cost_micros == 6_000  # abandoned call: ours
    assert Generation.objects.filter(tenant=customer.tenant).count() == 2  # the bad one created nothing
    wallet = customer.wallet()
    assert (wallet.held_micros, wallet.balance_micros) == (0, 50_000_000)

    monkeypatch.setattr(Conf, "SYNC", True)
    deliver_due_webhooks()  # the maintenance lane's sweep sends what the forwarder's commits queued
    secret = APIClient()
    secret.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=customer.tenant, name='ops', is_admin=True).secret}")
    signing = secret.get("/v1/webhook-secret").json()["secret"]
    [(request, _)] = receiver.log
    started = Webhook(signing).verify(request.get_data(), dict(request.headers))
    assert (started["id"], started["status"]) == (first_id, "running")
