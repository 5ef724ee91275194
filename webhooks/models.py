import base64
import secrets
import string

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from accounts.models import Tenant
from webhooks.events import EVENT_TYPES, event_filter_wants

_ID_ALPHABET = string.ascii_letters + string.digits


def _public_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def new_endpoint_id() -> str:
    return _public_id("we_")


def new_event_id() -> str:
    return _public_id("evt_")


def new_delivery_id() -> str:
    return _public_id("whd_")


def new_endpoint_secret() -> str:
    """Standard Webhooks secret format: "whsec_" + base64 of the raw HMAC key (32 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class WebhookEndpoint(models.Model):
    """Where a tenant wants its events POSTed. Disabled endpoints receive nothing until re-enabled."""

    id = models.CharField(primary_key=True, max_length=32, default=new_endpoint_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2048)
    description = models.CharField(max_length=500, blank=True)
    event_types = models.JSONField(
        default=list, blank=True, help_text="Event types to deliver; an empty list means every event but generation.started."
    )
    secret = models.CharField(max_length=128, default=new_endpoint_secret)
    enabled = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    consecutive_failures = models.PositiveIntegerField(
        default=0, help_text="Deliveries in a row that gave up; reset by any successful delivery."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="webhookendpoint_tenant_created")]

    def __str__(self) -> str:
        return f"{self.id} {self.url}"

    def wants(self, event_type: str) -> bool:
        return event_filter_wants(self.event_types, event_type)


class WebhookSigningSecret(models.Model):
    """The tenant's own signing secret, for per-request webhooks (the `webhook` field of a generation request).

    Endpoints have a secret each; a per-request URL has no endpoint to hold one, so it is signed with this.
    """

    tenant = models.OneToOneField(
        Tenant, primary_key=True, on_delete=models.CASCADE, related_name="webhook_signing_secret"
    )
    secret = models.CharField(max_length=128, default=new_endpoint_secret)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"signing secret of {self.tenant}"


class WebhookEvent(models.Model):
    """Something that happened to a tenant's objects, kept as sent so every delivery carries the same body."""

    id = models.CharField(primary_key=True, max_length=32, default=new_event_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_events")
    type = models.CharField(max_length=64, choices=[(event_type, event_type) for event_type in EVENT_TYPES])
    # DjangoJSONEncoder: publishers may pass datetimes, Decimals or UUIDs; they are stored (and sent) as strings.
    payload = models.JSONField(encoder=DjangoJSONEncoder, help_text="The event's `data` object.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="webhookevent_tenant_created")]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"


class WebhookDelivery(models.Model):
    """The outbox row: one event for one target, attempted until it succeeds or the retry schedule runs out.

    The target is an endpoint, or (per-request webhooks) a bare `url` given with one generation request.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (gave up)"

    id = models.CharField(primary_key=True, max_length=32, default=new_delivery_id, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    url = models.CharField(
        max_length=2048, blank=True, help_text="Per-request webhooks only: the URL given with the request."
    )
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the next attempt is due (or a running attempt's claim expires).",
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event"], name="webhookdelivery_unique_endpoint_event"
            ),
            models.CheckConstraint(
                condition=(models.Q(endpoint__isnull=False) & models.Q(url=""))
                | (models.Q(endpoint__isnull=True) & ~models.Q(url="")),
                name="webhookdelivery_one_target",
            ),
        ]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"], name="webhookdelivery_ep_created"),
            models.Index(
                fields=["next_attempt_at"],
                name="webhookdelivery_due",
                condition=models.Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.status}"

    @property
    def target_url(self) -> str:
        return self.endpoint.url if self.endpoint_id else self.url
