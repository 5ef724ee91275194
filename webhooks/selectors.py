from collections.abc import Collection

from django.db.models import QuerySet

from accounts.models import Tenant
from webhooks.events import event_filter_wants
from webhooks.models import WebhookDelivery, WebhookEndpoint


def webhook_delivery_list(
    *, endpoint: WebhookEndpoint, status: str | None = None
) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event")
    if status:
        deliveries = deliveries.filter(status=status)
    return deliveries


def webhook_tenant_delivery_list(
    *,
    tenant: Tenant,
    status: str | None = None,
    target: str | None = None,
    endpoint_id: str | None = None,
    object_id: str | None = None,
) -> QuerySet[WebhookDelivery]:
    """Every delivery of the tenant's events: to endpoints and to per-request webhooks (`target="request"`).

    `object_id` narrows to the events about one object (a generation id), read from the event's `data.id`.
    """
    deliveries = WebhookDelivery.objects.filter(event__tenant=tenant).select_related("event")
    if status:
        deliveries = deliveries.filter(status=status)
    if target == "request":
        deliveries = deliveries.filter(endpoint__isnull=True)
    elif target == "endpoint":
        deliveries = deliveries.filter(endpoint__isnull=False)
    if endpoint_id:
        deliveries = deliveries.filter(endpoint_id=endpoint_id)
    if object_id:
        deliveries = deliveries.filter(event__payload__id=object_id)
    return deliveries


def webhook_backlog(*, tenant: Tenant | None = None) -> int:
    """Deliveries still to be made (pending: due now or waiting for a retry)."""
    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
    return (pending if tenant is None else pending.filter(event__tenant=tenant)).count()


def webhook_tenants_subscribed(*, tenant_ids: Collection[int], event_type: str) -> set[int]:
    """Which of these tenants have an enabled endpoint that wants `event_type` (one query): a publisher of a
    frequent, opt-in event skips rendering and recording it for the others."""
    if not tenant_ids:
        return set()
    rows = WebhookEndpoint.objects.filter(tenant_id__in=set(tenant_ids), enabled=True).values_list(
        "tenant_id", "event_types"
    )
    return {tenant_id for tenant_id, event_types in rows if event_filter_wants(event_types, event_type)}
