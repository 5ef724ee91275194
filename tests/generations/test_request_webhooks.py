"""Per-request webhooks (Replicate's `webhook` + `webhook_events_filter`) end to end: API → queue → worker →
upstream sandbox → storage → ledger → signed POST to a real local HTTP server, verified with the secret that
`GET /v1/webhook-secret` returns."""

import hashlib
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django_q.conf import Conf
from pytest_httpserver import HTTPServer
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from accounts.models import AuditEvent
from accounts.services import SYSTEM, api_key_create
from billing.models import LedgerEntry
from generations.forwarder import forward_drain
from generations.models import Generation
from tests.generations.support import LOW_SQUARE, Customer
from webhooks.models import WebhookDelivery, WebhookEvent
from webhooks.services.endpoints import webhook_endpoint_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def customer(make_customer, forwarding, settings) -> Customer:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True  # the receiver lives on loopback
    settings.WEBHOOKS_RETRY_SCHEDULE_SECONDS = [0, 0]
    settings.PUBLIC_BASE_URL = "http://testserver"
    return make_customer()


@pytest.fixture
def admin(customer: Customer) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=customer.tenant, name='ops', is_admin=True).secret}")
    return client


def run_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The forwarder drains the queue; the webhook tasks it queues on commit run inline (django-q2 sync mode)."""
    monkeypatch.setattr(Conf, "SYNC", True)
    forward_drain()


def submit(customer: Customer, **fields) -> dict:
    response = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "a lighthouse", **fields},
                                    format="json")
    assert response.status_code == 202, response.json()
    return response.json()


def test_a_signed_delivery_of_the_generation_reaches_the_requested_url(
    customer: Customer, admin: APIClient, receiver: HTTPServer, monkeypatch
) -> None:
    receiver.expect_request("/hooks/gen", method="POST").respond_with_data("ok")
    url = receiver.url_for("/hooks/gen")
    created = submit(customer, n=2, webhook=url)
    assert (created["webhook"], created["webhook_events_filter"]) == (
        url, ["generation.succeeded", "generation.failed", "generation.canceled"]
    )

    run_worker(monkeypatch)

    [(request, _)] = receiver.log
    secret = admin.get("/v1/webhook-secret").json()["secret"]
    assert secret.startswith("whsec_")
    delivered = Webhook(secret).verify(request.get_data(), dict(request.headers))
    assert request.headers["webhook-id"].startswith("evt_")

    # The body is the generation exactly as GET renders it; only the signed URLs differ (signed at another time).
    fetched = customer.client.get(f"/v1/generations/{created['id']}").json()
    strip = lambda body: {**body, "images": [{**i, "url": None} for i in body["images"]]}  # noqa: E731
    assert strip(delivered) == strip(fetched)
    assert delivered["status"] == "succeeded" and delivered["charged_usd"] == "0.014400"
    assert "charged_micros" not in delivered and len(delivered["images"]) == 2
    for image in delivered["images"]:
        assert image["url"].startswith("http://testserver/v1/files/")
        download = APIClient().get(urlsplit(image["url"]).path)  # signed URL: no API key needed
        assert download.status_code == 200
        assert hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == image["sha256"]

    # The delivery log shows it, next to endpoint deliveries.
    [logged] = admin.get("/v1/webhook-deliveries", {"generation": created["id"]}).json()["results"]
    assert (logged["endpoint_id"], logged["url"], logged["status"], logged["attempts"]) == (None, url, "succeeded", 1)
    assert logged["event_type"] == "generation.succeeded" and logged["last_response_status"] == 200


def test_endpoint_deliveries_carry_the_same_full_generation_object(
    customer: Customer, receiver: HTTPServer, monkeypatch
) -> None:
    receiver.expect_request("/endpoint").respond_with_data("ok")
    endpoint = webhook_endpoint_create(
        tenant=customer.tenant, url=receiver.url_for("/endpoint"), event_types=[], actor=SYSTEM
    ).endpoint
    created = submit(customer)
    run_worker(monkeypatch)

    [(request, _)] = receiver.log
    envelope = Webhook(endpoint.secret).verify(request.get_data(), dict(request.headers))
    assert envelope["type"] == "generation.succeeded"
    data = envelope["data"]
    assert data["id"] == created["id"] and data["object"] == "generation"
    assert data["charged_usd"] == "0.007200" and "charged_micros" not in data
    assert set(data) == set(customer.client.get(f"/v1/generations/{created['id']}").json())
    assert data["images"][0]["url"].startswith("http://testserver/v1/files/")


def test_the_events_filter_limits_what_the_request_webhook_receives(
    customer: Customer, receiver: HTTPServer, monkeypatch
) -> None:
    created = submit(customer, webhook=receiver.url_for("/only-failures"), webhook_events_filter=["generation.failed"])
    assert created["webhook_events_filter"] == ["generation.failed"]
    run_worker(monkeypatch)

    assert Generation.objects.get().status == "succeeded"
    assert receiver.log == []
    assert WebhookEvent.objects.filter(type="generation.succeeded").count() == 1
    assert not WebhookDelivery.objects.exists()


def test_a_failed_delivery_is_retried_and_logged(customer: Customer, admin: APIClient, receiver: HTTPServer,
                                                  monkeypatch) -> None:
    from webhooks.tasks import deliver_due_webhooks

    receiver.expect_ordered_request("/flaky").respond_with_data("down", status=503)
    receiver.expect_ordered_request("/flaky").respond_with_data("ok")
    created = submit(customer, webhook=receiver.url_for("/flaky"))
    run_worker(monkeypatch)

    [first] = admin.get("/v1/webhook-deliveries", {"target": "request"}).json()["results"]
    assert (first["status"], first["attempts"], first["last_response_status"]) == ("pending", 1, 503)
    assert first["last_error"].startswith("HTTP 503")

    assert deliver_due_webhooks() == 1  # the minute sweep; the retry schedule here is [0, 0]

    [second] = admin.get("/v1/webhook-deliveries", {"generation": created["id"]}).json()["results"]
    assert (second["status"], second["attempts"], second["last_response_status"]) == ("succeeded", 2, 200)
    requests = [request for request, _ in receiver.log]
    assert len(requests) == 2
    assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"]  # receivers can deduplicate


@pytest.mark.parametrize(
    ("fields", "private_allowed", "code", "param"),
    [
        ({"webhook": "https://127.0.0.1/hook"}, False, "webhook_url_not_allowed", "webhook"),
        ({"webhook": "https://10.0.0.8/hook"}, False, "webhook_url_not_allowed", "webhook"),
        ({"webhook": "http://[::1]:8080/hook"}, False, "webhook_url_not_allowed", "webhook"),
        ({"webhook": "https://user:pw@hooks.example.com/x"}, True, "webhook_url_not_allowed", "webhook"),
        ({"webhook": "ftp://hooks.example.com/x"}, True, "webhook_url_not_allowed", "webhook"),
        ({"webhook": "https://127.0.0.1/h", "webhook_events_filter": ["generation.begun"]}, True,
         "invalid_webhook_events_filter", "webhook_events_filter"),
        ({"webhook": "https://127.0.0.1/h", "webhook_events_filter": []}, True,
         "invalid_webhook_events_filter", "webhook_events_filter"),
        ({"webhook_events_filter": ["generation.succeeded"]}, True, "invalid_webhook_events_filter",
         "webhook_events_filter"),
    ],
)
def test_refused_webhooks_answer_400_naming_the_field_and_charge_nothing(
    customer: Customer, settings, fields, private_allowed, code, param
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = private_allowed
    response = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "x", **fields}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert not Generation.objects.exists()
    assert not LedgerEntry.objects.filter(tenant=customer.tenant).exclude(kind="grant").exists()
    assert customer.wallet().held_micros == 0 and customer.wallet().balance_micros == 50_000_000


def test_the_signing_secret_rotates_for_admin_keys_only_and_is_audited(
    customer: Customer, admin: APIClient, receiver: HTTPServer, monkeypatch
) -> None:
    assert customer.client.get("/v1/webhook-secret").status_code == 403
    assert customer.client.post("/v1/webhook-secret/rotate").status_code == 403
    old = admin.get("/v1/webhook-secret").json()["secret"]
    assert admin.get("/v1/webhook-secret").json()["secret"] == old  # stable until rotated

    rotated = admin.post("/v1/webhook-secret/rotate")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert admin.get("/v1/webhook-secret").json()["secret"] == new
    audit = AuditEvent.objects.get(action="webhook_signing_secret.rotated")
    assert audit.tenant == customer.tenant and audit.actor_api_key is not None
    assert old not in json.dumps([audit.before, audit.after])

    receiver.expect_request("/after-rotation").respond_with_data("ok")
    submit(customer, webhook=receiver.url_for("/after-rotation"))
    run_worker(monkeypatch)
    [(request, _)] = receiver.log
    assert Webhook(new).verify(request.get_data(), dict(request.headers))["status"] == "succeeded"
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.get_data(), dict(request.headers))


def test_a_canceled_generation_notifies_its_webhook(customer: Customer, admin: APIClient, receiver: HTTPServer,
                                                    monkeypatch) -> None:
    receiver.expect_request("/cancel").respond_with_data("ok")
    created = submit(customer, webhook=receiver.url_for("/cancel"))
    monkeypatch.setattr(Conf, "SYNC", True)  # the delivery task runs inline once the cancel commits
    assert customer.client.post(f"/v1/generations/{created['id']}/cancel").status_code == 200

    [(request, _)] = receiver.log
    secret = admin.get("/v1/webhook-secret").json()["secret"]
    body = Webhook(secret).verify(request.get_data(), dict(request.headers))
    assert (body["id"], body["status"], body["charged_usd"]) == (created["id"], "canceled", "0.000000")
    assert body["error"]["code"] == "canceled"
    assert customer.wallet().balance_micros == 50_000_000
