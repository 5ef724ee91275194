"""Publishing: an event and one pending delivery per target that wants it, written in the publisher's
transaction (an outbox), with the first attempts queued once it commits."""

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from accounts.models import Tenant
from webhooks.events import event_types_known
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks.services.request_webhooks import RequestWebhook


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
    event_types_known({spec.event_type for spec in events})
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
