"""Per-request webhooks (Replicate's `webhook` + `webhook_events_filter`): one URL for one object's events, signed
with the tenant's signing secret."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import Actor, audit_record
from project import errors
from webhooks.events import (
    EVENT_ALIASES,
    REQUEST_DEFAULT_EVENT_TYPES,
    REQUEST_EVENT_TYPES,
    event_types_canonical,
)
from webhooks.models import WebhookSigningSecret, new_endpoint_secret
from webhooks.services.endpoints import webhook_url_check


class InvalidWebhookEventsFilter(errors.InvalidRequest):
    code = "invalid_webhook_events_filter"
    message = "Unknown event names in webhook_events_filter."


@dataclass(frozen=True)
class RequestWebhook:
    """A per-request webhook: the URL and the events it asked for."""

    url: str
    events: tuple[str, ...]


def request_webhook_check(*, url: str, events: list[str] | None) -> RequestWebhook:
    """Validate a per-request webhook before anything is charged; `None` events means the terminal events."""
    webhook_url_check(url=url, param="webhook")
    if events is None:
        return RequestWebhook(url=url, events=REQUEST_DEFAULT_EVENT_TYPES)
    unknown = sorted({str(event) for event in events} - set(REQUEST_EVENT_TYPES) - set(EVENT_ALIASES))
    if unknown or not events:
        raise InvalidWebhookEventsFilter(
            f"webhook_events_filter must list some of {', '.join([*EVENT_ALIASES, *REQUEST_EVENT_TYPES])}"
            + (f"; unknown: {', '.join(unknown)}." if unknown else "."),
            param="webhook_events_filter",
        )
    wanted = event_types_canonical(events)
    return RequestWebhook(url=url, events=tuple(e for e in REQUEST_EVENT_TYPES if e in wanted))


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
