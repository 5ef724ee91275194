import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_q.models import Task
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from accounts.models import AuditEvent, Tenant
from accounts.services import SYSTEM
from tests.webhooks.conftest import received
from webhooks.events import GENERATION_FAILED, GENERATION_SUCCEEDED, IMAGE_REJECTED, UnknownEventType
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks.services.delivery import (
    webhook_deliveries_claim_due,
    webhook_delivery_attempt,
    webhook_delivery_claim,
)
from webhooks.services.endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_disable,
    webhook_endpoint_rotate_secret,
)
from webhooks.services.publishing import webhook_event_publish
from webhooks.tasks import deliver_webhook

pytestmark = pytest.mark.django_db

GENERATION = {"id": "gen_123", "object": "generation", "status": "succeeded", "images": [{"index": 0}]}


def publish(tenant: Tenant, event_type: str = GENERATION_SUCCEEDED, data: dict | None = None) -> WebhookEvent:
    return webhook_event_publish(tenant=tenant, event_type=event_type, data=data or GENERATION)


def make_due(delivery: WebhookDelivery) -> None:
    """Stand in for the clock reaching the scheduled retry."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_endpoint_secret_is_a_standard_webhooks_secret(tenant: Tenant, make_endpoint) -> None:
    endpoint = make_endpoint(tenant)
    assert endpoint.id.startswith("we_")
    assert endpoint.secret.startswith("whsec_")
    assert len(base64.b64decode(endpoint.secret.removeprefix("whsec_"))) >= 24


def test_published_event_arrives_signed_through_django_q(
    tenant: Tenant, make_endpoint, receiver: HTTPServer, q_sync: None, django_capture_on_commit_callbacks
) -> None:
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    endpoint = make_endpoint(tenant)

    with django_capture_on_commit_callbacks(execute=True):
        event = publish(tenant)

    [request] = received(receiver)
    body = request.get_data()
    assert Webhook(endpoint.secret).verify(body, dict(request.headers)) == {
        "type": "generation.succeeded",
        "timestamp": event.created_at.isoformat(),
        "data": GENERATION,
    }
    assert request.headers["webhook-id"] == event.id and event.id.startswith("evt_")
    assert request.headers["content-type"] == "application/json"
    delivery = WebhookDelivery.objects.get(event=event)
    assert (delivery.status, delivery.attempts, delivery.last_response_status) == ("succeeded", 1, 200)
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    assert Task.objects.filter(func="webhooks.tasks.deliver_webhook", success=True).count() == 1


def test_nothing_is_queued_when_the_publishing_transaction_rolls_back(
    tenant: Tenant, make_endpoint, receiver: HTTPServer, q_sync: None, django_capture_on_commit_callbacks
) -> None:
    make_endpoint(tenant)
    with django_capture_on_commit_callbacks() as callbacks:
        publish(tenant)
    assert len(callbacks) == 1
    assert received(receiver) == []


def test_an_endpoint_receives_only_the_event_types_it_listed(
    tenant: Tenant, make_endpoint, receiver: HTTPServer, q_sync: None, django_capture_on_commit_callbacks
) -> None:
    receiver.expect_request("/all").respond_with_data("ok")
    receiver.expect_request("/failures").respond_with_data("ok")
    everything = make_endpoint(tenant, path="/all")
    failures_only = make_endpoint(tenant, path="/failures", events=[GENERATION_FAILED])

    with django_capture_on_commit_callbacks(execute=True):
        publish(tenant, GENERATION_SUCCEEDED)
        publish(tenant, GENERATION_FAILED, {"id": "gen_2"})

    assert [request.path for request in received(receiver)].count("/all") == 2
    failures = [json.loads(r.get_data()) for r in received(receiver) if r.path == "/failures"]
    assert [body["type"] for body in failures] == ["generation.failed"]
    assert WebhookDelivery.objects.filter(endpoint=everything).count() == 2
    assert WebhookDelivery.objects.filter(endpoint=failures_only).count() == 1


def test_events_reach_only_the_publishing_tenants_endpoints(
    tenant: Tenant,
    make_tenant,
    make_endpoint,
    receiver: HTTPServer,
    q_sync: None,
    django_capture_on_commit_callbacks,
) -> None:
    receiver.expect_request("/hook").respond_with_data("ok")
    make_endpoint(make_tenant("globex"))
    with django_capture_on_commit_callbacks(execute=True):
        event = publish(tenant)
    assert received(receiver) == []
    assert not WebhookDelivery.objects.filter(event=event).exists()


def test_dates_and_decimals_in_event_data_are_sent_as_strings(
    tenant: Tenant, make_endpoint, receiver: HTTPServer
) -> None:
    receiver.expect_request("/hook").respond_with_data("ok")
    make_endpoint(tenant)
    finished_at = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    event = publish(tenant, data={"finished_at": finished_at, "price": Decimal("0.011000")})
    deliver_webhook(WebhookDelivery.objects.get(event=event).id)

    [request] = received(receiver)
    assert request.get_json()["data"] == {"finished_at": "2026-11-24T12:00:00Z", "price": "0.011000"}


def test_an_unknown_event_type_is_a_programming_error(tenant: Tenant) -> None:
    with pytest.raises(UnknownEventType):
        publish(tenant, "generation.exploded")


def test_a_failing_receiver_is_retried_on_a_growing_schedule_then_given_up(
    settings, tenant: Tenant, make_endpoint, receiver: HTTPServer
) -> None:
    settings.WEBHOOKS_RETRY_SCHEDULE_SECONDS = [10, 60, 300]
    receiver.expect_request("/hook").respond_with_data("boom", status=503)
    make_endpoint(tenant)
    delivery = WebhookDelivery.objects.get(event=publish(tenant))

    waits = []
    for attempt in range(1, 4):
        deliver_webhook(delivery.id)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_response_status) == (
            "pending",
            attempt,
            503,
        )
        assert delivery.last_error.startswith("HTTP 503: boom")
        waits.append(round((delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()))
        deliver_webhook(delivery.id)  # not due yet: nothing is sent
        assert len(received(receiver)) == attempt
        make_due(delivery)

    assert waits == [10, 60, 300]
    deliver_webhook(delivery.id)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 4, None)
    assert len(received(receiver)) == 4
    assert WebhookEndpoint.objects.get(pk=delivery.endpoint_id).consecutive_failures == 1


def test_a_retry_after_failures_can_still_succeed_and_resets_the_streak(
    tenant: Tenant, make_endpoint, receiver: HTTPServer
) -> None:
    receiver.expect_ordered_request("/hook").respond_with_data("down", status=500)
    receiver.expect_ordered_request("/hook").respond_with_data("ok")
    endpoint = make_endpoint(tenant)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=3)
    delivery = WebhookDelivery.objects.get(event=publish(tenant))

    deliver_webhook(delivery.id)
    deliver_webhook(delivery.id)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_response_status) == ("succeeded", 2, 200)
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0 and endpoint.enabled


def test_sustained_failure_disables_the_endpoint(
    settings, tenant: Tenant, make_endpoint, receiver: HTTPServer
) -> None:
    settings.WEBHOOKS_RETRY_SCHEDULE_SECONDS = []
    settings.WEBHOOKS_DISABLE_AFTER_FAILED_DELIVERIES = 3
    receiver.expect_request("/hook").respond_with_data("gone", status=410)
    endpoint = make_endpoint(tenant)

    for _ in range(3):
        deliver_webhook(WebhookDelivery.objects.get(event=publish(tenant)).id)

    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_at is not None
    assert "3 deliveries in a row failed" in endpoint.disabled_reason
    audit = AuditEvent.objects.get(action="webhook_endpoint.disabled", target_id=endpoint.id)
    assert audit.actor_type == AuditEvent.ActorType.SYSTEM
    assert not WebhookDelivery.objects.filter(event=publish(tenant)).exists()
    assert len(received(receiver)) == 3


def test_a_pending_delivery_to_a_disabled_endpoint_is_dropped_unsent(
    tenant: Tenant, make_endpoint, receiver: HTTPServer
) -> None:
    endpoint = make_endpoint(tenant)
    delivery = WebhookDelivery.objects.get(event=publish(tenant))
    webhook_endpoint_disable(endpoint=endpoint, actor=SYSTEM)

    deliver_webhook(delivery.id)

    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.last_error == "The endpoint is disabled."
    assert received(receiver) == []
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0


def test_after_rotation_deliveries_verify_with_the_new_secret_only(
    tenant: Tenant, make_endpoint, receiver: HTTPServer
) -> None:
    receiver.expect_request("/hook").respond_with_data("ok")
    endpoint = make_endpoint(tenant)
    old_secret = endpoint.secret

    new_secret = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=SYSTEM).secret
    deliver_webhook(WebhookDelivery.objects.get(event=publish(tenant)).id)

    assert new_secret != old_secret and new_secret.startswith("whsec_")
    [request] = received(receiver)
    Webhook(new_secret).verify(request.get_data(), dict(request.headers))
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(request.get_data(), dict(request.headers))
    assert (
        AuditEvent.objects.filter(action="webhook_endpoint.secret_rotated", target_id=endpoint.id).count()
        == 1
    )


def test_a_loopback_target_is_refused_again_at_delivery_time(
    settings, tenant: Tenant, make_endpoint, receiver: HTTPServer
) -> None:
    """The endpoint was accepted while loopback was allowed (or its DNS pointed elsewhere); sending re-checks."""
    receiver.expect_request("/hook").respond_with_data("ok")
    make_endpoint(tenant)
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    delivery = WebhookDelivery.objects.get(event=publish(tenant))

    deliver_webhook(delivery.id)

    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_response_status is None and "loopback" in delivery.last_error
    assert received(receiver) == []


def test_an_unreachable_receiver_is_a_failed_attempt(settings, tenant: Tenant, receiver: HTTPServer) -> None:
    url = receiver.url_for("/hook")
    receiver.stop()
    endpoint = webhook_endpoint_create(tenant=tenant, url=url, event_types=[], actor=SYSTEM).endpoint
    delivery = WebhookDelivery.objects.get(endpoint=endpoint, event=publish(tenant))

    deliver_webhook(delivery.id)

    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_response_status is None and "ConnectError" in delivery.last_error


def test_a_claimed_attempt_is_sent_once_even_if_claimed_again(
    tenant: Tenant, make_endpoint, receiver: HTTPServer
) -> None:
    receiver.expect_request("/hook").respond_with_data("ok")
    make_endpoint(tenant)
    delivery = WebhookDelivery.objects.get(event=publish(tenant, IMAGE_REJECTED))

    attempt = webhook_delivery_claim(delivery_id=delivery.id)
    assert webhook_delivery_claim(delivery_id=delivery.id) is None
    assert webhook_deliveries_claim_due(limit=10) == []
    webhook_delivery_attempt(delivery_id=delivery.id, attempt=attempt)
    assert webhook_delivery_attempt(delivery_id=delivery.id, attempt=attempt) is None

    assert len(received(receiver)) == 1


def test_a_stale_attempt_whose_claim_expired_is_not_sent(
    tenant: Tenant, make_endpoint, receiver: HTTPServer
) -> None:
    """A worker that held attempt 1 past its lease lost it to the sweep, which now owns attempt 2."""
    receiver.expect_request("/hook").respond_with_data("ok")
    make_endpoint(tenant)
    delivery = WebhookDelivery.objects.get(event=publish(tenant))
    first = webhook_delivery_claim(delivery_id=delivery.id)
    make_due(delivery)
    [(_, second)] = webhook_deliveries_claim_due(limit=10)

    assert webhook_delivery_attempt(delivery_id=delivery.id, attempt=first) is None
    assert webhook_delivery_attempt(delivery_id=delivery.id, attempt=second).status == "succeeded"
    assert len(received(receiver)) == 1
