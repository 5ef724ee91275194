"""Writes for webhook endpoints and the delivery outbox.

A delivery attempt is three short steps so no transaction is open while we wait for a tenant's server:
claim (lock the row, count the attempt, hold it with a lease), send (outside any transaction), record the outcome
(only if the row still belongs to that attempt). A worker that dies mid-send leaves a claim that expires, and the
sweep then retries it as the next attempt.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django_q.tasks import async_task
from standardwebhooks.webhooks import Webhook

from accounts.models import Tenant
from accounts.services import SYSTEM, Actor, audit_record
from project import errors
from project.safe_http import SafeHttpError, resolve_public_address, safe_post
from webhooks.events import EVENT_TYPES, REQUEST_EVENT_TYPES
from webhooks.models import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSigningSecret,
    new_endpoint_secret,
)

logger = structlog.get_logger(__name__)

# A claimed attempt may take this long (queue wait + send) before the sweep may hand it out again.
ATTEMPT_LEASE = timedelta(minutes=30)
_ERROR_MAX_CHARS = 500


class WebhookUrlNotAllowed(errors.InvalidRequest):
    code = "webhook_url_not_allowed"
    message = "This URL cannot receive webhooks."

    def __init__(self, message: str, *, param: str = "url") -> None:
        super().__init__(message, param=param)


class InvalidWebhookEventsFilter(errors.InvalidRequest):
    code = "invalid_webhook_events_filter"
    message = "Unknown event names in webhook_events_filter."


class UnknownEventType(ValueError):
    """A publisher passed an event type that is not in `webhooks.events.EVENT_TYPES`."""


def webhook_url_check(*, url: str, param: str = "url") -> None:
    """Refuse URLs we would not deliver to. Delivery checks the address again, since DNS answers change."""
    allow_private = settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlNotAllowed("Webhook URLs must use http or https.", param=param)
    if parts.scheme != "https" and not (allow_private or settings.DEBUG):
        raise WebhookUrlNotAllowed("Webhook URLs must use https.", param=param)
    if parts.username or parts.password:
        raise WebhookUrlNotAllowed(
            "Webhook URLs must not carry credentials; verify the signature instead.", param=param
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        resolve_public_address(parts.hostname or "", port, allow_private=allow_private)
    except ValueError as exc:
        raise WebhookUrlNotAllowed(f"The URL is invalid: {exc}.", param=param) from exc
    except SafeHttpError as exc:
        raise WebhookUrlNotAllowed(f"This URL cannot receive webhooks: {exc}.", param=param) from exc


@dataclass(frozen=True)
class RequestWebhook:
    """A per-request webhook (Replicate's `webhook` + `webhook_events_filter`): one URL for one object's events."""

    url: str
    events: tuple[str, ...]


def request_webhook_check(*, url: str, events: list[str] | None) -> RequestWebhook:
    """Validate a per-request webhook before anything is charged; `None` events means the terminal events."""
    webhook_url_check(url=url, param="webhook")
    if events is None:
        return RequestWebhook(url=url, events=REQUEST_EVENT_TYPES)
    unknown = sorted(set(events) - set(REQUEST_EVENT_TYPES))
    if unknown or not events:
        raise InvalidWebhookEventsFilter(
            f"webhook_events_filter must list some of {', '.join(REQUEST_EVENT_TYPES)}"
            + (f"; unknown: {', '.join(unknown)}." if unknown else "."),
            param="webhook_events_filter",
        )
    return RequestWebhook(url=url, events=tuple(e for e in REQUEST_EVENT_TYPES if e in events))


def _normalized_event_types(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise UnknownEventType(f"unknown event types: {', '.join(unknown)}")
    return [event_type for event_type in EVENT_TYPES if event_type in event_types]


def _endpoint_snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "enabled": endpoint.enabled,
    }


@dataclass(frozen=True)
class IssuedWebhookEndpoint:
    endpoint: WebhookEndpoint
    secret: str


def webhook_endpoint_create(
    *, tenant: Tenant, url: str, event_types: list[str], description: str = "", actor: Actor
) -> IssuedWebhookEndpoint:
    """Create an endpoint. Its signing secret is returned here; the API shows it only on create and rotate."""
    webhook_url_check(url=url)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant,
            url=url,
            description=description,
            event_types=_normalized_event_types(event_types),
            secret=new_endpoint_secret(),
        )
        audit_record(
            actor=actor,
            action="webhook_endpoint.created",
            target=endpoint,
            tenant=tenant,
            after=_endpoint_snapshot(endpoint),
        )
    return IssuedWebhookEndpoint(endpoint=endpoint, secret=endpoint.secret)


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    actor: Actor,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change what was given. Re-enabling clears the failure streak so the endpoint gets a fresh chance."""
    if url is not None:
        webhook_url_check(url=url)
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _endpoint_snapshot(locked)
        if url is not None:
            locked.url = url
        if event_types is not None:
            locked.event_types = _normalized_event_types(event_types)
        if description is not None:
            locked.description = description
        if enabled is True and not locked.enabled:
            locked.enabled = True
            locked.disabled_at = None
            locked.disabled_reason = ""
            locked.consecutive_failures = 0
        elif enabled is False and locked.enabled:
            _disable(locked, reason="Disabled through the API.")
        after = _endpoint_snapshot(locked)
        if after == before:
            return locked
        locked.save()
        audit_record(
            actor=actor,
            action="webhook_endpoint.updated",
            target=locked,
            tenant=locked.tenant,
            before=before,
            after=after,
        )
    return locked


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint, actor: Actor) -> IssuedWebhookEndpoint:
    """Replace the secret at once: every attempt from now on, retries included, is signed with the new one."""
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.secret = new_endpoint_secret()
        locked.save(update_fields=["secret", "updated_at"])
        audit_record(
            actor=actor, action="webhook_endpoint.secret_rotated", target=locked, tenant=locked.tenant
        )
    return IssuedWebhookEndpoint(endpoint=locked, secret=locked.secret)


def webhook_signing_secret_get(*, tenant: Tenant) -> str:
    """The tenant's signing secret for per-request webhooks, created on first use."""
    signing, _created = WebhookSigningSecret.objects.get_or_create(tenant=tenant)
    return signing.secret


def webhook_signing_secret_rotate(*, tenant: Tenant, actor: Actor) -> str:
    """Replace the tenant's signing secret at once: every attempt from now on, retries included, uses the new one."""
    with transaction.atomic():
        WebhookSigningSecret.objects.get_or_create(tenant=tenant)
        signing = WebhookSigningSecret.objects.select_for_update().get(tenant=tenant)
        signing.secret = new_endpoint_secret()
        signing.rotated_at = timezone.now()
        signing.save(update_fields=["secret", "rotated_at"])
        audit_record(actor=actor, action="webhook_signing_secret.rotated", target=signing, tenant=tenant)
    return signing.secret


def _disable(endpoint: WebhookEndpoint, *, reason: str) -> None:
    endpoint.enabled = False
    endpoint.disabled_at = timezone.now()
    endpoint.disabled_reason = reason


def webhook_endpoint_disable(
    *, endpoint: WebhookEndpoint, actor: Actor, reason: str = "Disabled through the API."
) -> WebhookEndpoint:
    """Stop deliveries to the endpoint. Idempotent: disabling a disabled endpoint changes and audits nothing."""
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if not locked.enabled:
            return locked
        _disable(locked, reason=reason)
        locked.save(update_fields=["enabled", "disabled_at", "disabled_reason", "updated_at"])
        audit_record(
            actor=actor,
            action="webhook_endpoint.disabled",
            target=locked,
            tenant=locked.tenant,
            before={"enabled": True},
            after={"enabled": False, "reason": reason},
        )
    return locked


@dataclass(frozen=True)
class EventToPublish:
    tenant: Tenant
    event_type: str
    data: dict[str, Any]
    request_webhook: RequestWebhook | None = None


def webhook_event_publish(
    *, tenant: Tenant, event_type: str, data: dict[str, Any], request_webhook: RequestWebhook | None = None
) -> WebhookEvent:
    """Record an event and one pending delivery per enabled endpoint that wants it, plus one for the object's
    per-request webhook if it asked for this event.

    Call it inside the transaction that made the change: the rows commit or vanish with it, and the delivery
    tasks are only queued once the commit has happened.
    """
    (event,) = webhook_events_publish(
        events=[EventToPublish(tenant=tenant, event_type=event_type, data=data, request_webhook=request_webhook)]
    )
    return event


def webhook_events_publish(*, events: list[EventToPublish]) -> list[WebhookEvent]:
    """`webhook_event_publish` for many events at once (a batch of settled generations): one INSERT of the events,
    one SELECT of their tenants' endpoints and one INSERT of the deliveries, whatever the number of events."""
    for spec in events:
        if spec.event_type not in EVENT_TYPES:
            raise UnknownEventType(f"unknown event type {spec.event_type!r}")
    if not events:
        return []
    now = timezone.now()
    with transaction.atomic():
        created = WebhookEvent.objects.bulk_create(
            [WebhookEvent(tenant=spec.tenant, type=spec.event_type, payload=spec.data, created_at=now) for spec in events]
        )
        endpoints: dict[int, list[WebhookEndpoint]] = {}
        for endpoint in WebhookEndpoint.objects.filter(tenant_id__in={spec.tenant.pk for spec in events}, enabled=True):
            endpoints.setdefault(endpoint.tenant_id, []).append(endpoint)
        pending = []
        for spec, event in zip(events, created, strict=True):
            pending += [
                WebhookDelivery(endpoint=endpoint, event=event, next_attempt_at=now, created_at=now)
                for endpoint in endpoints.get(spec.tenant.pk, [])
                if endpoint.wants(spec.event_type)
            ]
            if spec.request_webhook is not None and spec.event_type in spec.request_webhook.events:
                pending.append(
                    WebhookDelivery(url=spec.request_webhook.url, event=event, next_attempt_at=now, created_at=now)
                )
        deliveries = WebhookDelivery.objects.bulk_create(pending) if pending else []
    for delivery in deliveries:
        # robust: the event and its deliveries are committed (the due-delivery sweep sends them if this enqueue is
        # lost, e.g. the broker is down); a broker error must not turn the settled generation into an error.
        transaction.on_commit(
            lambda delivery_id=delivery.id: async_task("webhooks.tasks.deliver_webhook", delivery_id), robust=True
        )
    return created


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
