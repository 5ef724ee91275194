"""A tenant's webhook endpoints: created, changed, their secret rotated, disabled (by the tenant, by staff or
after sustained failure); every change audited. Also the URL check every webhook target passes."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import Actor, audit_record
from project import errors
from project.safe_http import SafeHttpError, resolve_public_address
from webhooks.events import event_types_known
from webhooks.models import WebhookEndpoint, new_endpoint_secret


class WebhookUrlNotAllowed(errors.InvalidRequest):
    code = "webhook_url_not_allowed"
    message = "This URL cannot receive webhooks."

    def __init__(self, message: str, *, param: str = "url") -> None:
        super().__init__(message, param=param)


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
            event_types=event_types_known(event_types),
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
            locked.event_types = event_types_known(event_types)
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
