"""Delivering the outbox: each attempt claimed, sent, signed per Standard Webhooks and recorded; retried on a
growing schedule; an endpoint disabled after sustained failure.

An attempt is three short steps so no transaction is open while we wait for a tenant's server: claim (lock the
row, count the attempt, hold it with a lease), send (outside any transaction), record the outcome (only if the
row still belongs to that attempt). A worker that dies mid-send leaves a claim that expires, and the sweep then
retries it as the next attempt.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from accounts.services import SYSTEM
from project.safe_http import SafeHttpError, safe_post
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services.endpoints import webhook_endpoint_disable
from webhooks.services.request_webhooks import webhook_signing_secret_get

logger = structlog.get_logger(__name__)

# A claimed attempt may take this long (queue wait + send) before the sweep may hand it out again.
ATTEMPT_LEASE = timedelta(minutes=30)
_ERROR_MAX_CHARS = 500


def _due_deliveries(now: datetime) -> QuerySet[WebhookDelivery]:
    queryset = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
    if connection.features.has_select_for_update_skip_locked:
        # Two workers sweeping at once each take different rows instead of queueing behind each other's locks.
        return queryset.select_for_update(skip_locked=True)
    return queryset.select_for_update()


def _claim(delivery: WebhookDelivery, now: datetime) -> int:
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.next_attempt_at = now + ATTEMPT_LEASE
    delivery.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at"])
    return delivery.attempts


def webhook_delivery_claim(*, delivery_id: str) -> int | None:
    """Take the delivery's next attempt if it is due; returns the attempt number, or None if it is not ours to send."""
    now = timezone.now()
    with transaction.atomic():
        delivery = _due_deliveries(now).filter(pk=delivery_id).first()
        if delivery is None:
            return None
        return _claim(delivery, now)


def webhook_deliveries_claim_due(*, limit: int) -> list[tuple[str, int]]:
    """Take up to `limit` due attempts, oldest first, as (delivery id, attempt number) pairs."""
    now = timezone.now()
    with transaction.atomic():
        due = list(_due_deliveries(now).order_by("next_attempt_at", "id")[:limit])
        return [(delivery.id, _claim(delivery, now)) for delivery in due]


def _signed_request(delivery: WebhookDelivery, sent_at: datetime) -> tuple[bytes, dict[str, str]]:
    event = delivery.event
    if delivery.endpoint_id:
        # Endpoints receive every kind of event, so the body says which one (Standard Webhooks' envelope).
        document: dict[str, Any] = {"type": event.type, "timestamp": event.created_at.isoformat(), "data": event.payload}
        secret = delivery.endpoint.secret
    else:
        # A per-request webhook gets the object itself, as Replicate sends the prediction.
        document = event.payload
        secret = webhook_signing_secret_get(tenant=event.tenant)
    body = json.dumps(document, separators=(",", ":"), sort_keys=True)
    signature = Webhook(secret).sign(msg_id=event.id, timestamp=sent_at, data=body)
    headers = {
        "content-type": "application/json",
        "user-agent": "imagegen-webhooks/1",
        # The event id, not the delivery id: retries carry the same id so receivers can drop duplicates.
        "webhook-id": event.id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers


def webhook_delivery_attempt(*, delivery_id: str, attempt: int) -> WebhookDelivery | None:
    """Send a claimed attempt and record how it went. Returns None when the claim was lost to a newer one."""
    delivery = (
        WebhookDelivery.objects.select_related("endpoint", "event__tenant").filter(pk=delivery_id).first()
    )
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING or delivery.attempts != attempt:
        return None
    if delivery.endpoint_id and not delivery.endpoint.enabled:
        return _record(
            delivery, attempt=attempt, response_status=None, error="The endpoint is disabled.", dropped=True
        )

    body, headers = _signed_request(delivery, datetime.now(UTC))
    try:
        response = safe_post(
            delivery.target_url,
            content=body,
            headers=headers,
            timeout_seconds=settings.WEBHOOKS_TIMEOUT_SECONDS,
            allow_private=settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS,
        )
    except SafeHttpError as exc:
        return _record(delivery, attempt=attempt, response_status=None, error=str(exc))
    if 200 <= response.status_code < 300:
        return _record(delivery, attempt=attempt, response_status=response.status_code, error="")
    excerpt = response.content[:200].decode("utf-8", errors="replace")
    return _record(
        delivery,
        attempt=attempt,
        response_status=response.status_code,
        error=f"HTTP {response.status_code}: {excerpt}",
    )


def _retry_delay(attempt: int) -> timedelta | None:
    """The wait after failed attempt number `attempt`, or None once the schedule is spent."""
    schedule = settings.WEBHOOKS_RETRY_SCHEDULE_SECONDS
    if attempt > len(schedule):
        return None
    return timedelta(seconds=schedule[attempt - 1])


def _record(
    delivery: WebhookDelivery, *, attempt: int, response_status: int | None, error: str, dropped: bool = False
) -> WebhookDelivery | None:
    now = timezone.now()
    succeeded = not error
    with transaction.atomic():
        locked = (
            WebhookDelivery.objects.select_for_update()
            .filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING, attempts=attempt)
            .first()
        )
        if locked is None:
            return None
        locked.last_response_status = response_status
        locked.last_error = error[:_ERROR_MAX_CHARS]
        delay = None if dropped else _retry_delay(attempt)
        if succeeded:
            locked.status = WebhookDelivery.Status.SUCCEEDED
            locked.delivered_at = now
            locked.next_attempt_at = None
            if locked.endpoint_id:
                WebhookEndpoint.objects.filter(pk=locked.endpoint_id).update(consecutive_failures=0)
        elif delay is not None:
            locked.next_attempt_at = now + delay
        else:
            locked.status = WebhookDelivery.Status.FAILED
            locked.next_attempt_at = None
            if not dropped and locked.endpoint_id:
                _count_failed_delivery(locked.endpoint_id)
        locked.save(
            update_fields=["status", "last_response_status", "last_error", "delivered_at", "next_attempt_at"]
        )
    logger.info(
        "webhook_attempt",
        delivery=locked.id,
        endpoint=locked.endpoint_id,
        attempt=attempt,
        status=locked.status,
        response_status=response_status,
        error=locked.last_error or None,
    )
    return locked


def _count_failed_delivery(endpoint_id: str) -> None:
    """One more delivery gave up; a long enough streak means the receiver is gone, so stop sending to it."""
    WebhookEndpoint.objects.filter(pk=endpoint_id).update(consecutive_failures=F("consecutive_failures") + 1)
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    limit = settings.WEBHOOKS_DISABLE_AFTER_FAILED_DELIVERIES
    if endpoint.enabled and endpoint.consecutive_failures >= limit:
        webhook_endpoint_disable(
            endpoint=endpoint,
            actor=SYSTEM,
            reason=f"Disabled automatically after {endpoint.consecutive_failures} deliveries in a row failed.",
        )
