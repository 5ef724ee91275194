from rest_framework import serializers

from project.api.serializers import StrictFieldsMixin
from webhooks.events import EVENT_FILTER_NAMES, EVENT_TYPES
from webhooks.models import WebhookDelivery, WebhookEndpoint

_EVENTS_HELP = (
    "Event types to receive (`start` is accepted for generation.started, as Replicate names it). Empty or omitted: "
    "every event type except generation.started, which is sent only when named."
)


class WebhookEndpointSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES), source="event_types")

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "enabled",
            "disabled_at",
            "disabled_reason",
            "consecutive_failures",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class IssuedWebhookEndpointSerializer(WebhookEndpointSerializer):
    secret = serializers.SerializerMethodField(
        help_text="The signing secret (Standard Webhooks `whsec_…`). Shown only now; store it."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, obj: WebhookEndpoint) -> str:
        return self.context["secret"]


class WebhookEndpointCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    url = serializers.URLField(max_length=2048)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_FILTER_NAMES),
        default=list,
        allow_empty=True,
        help_text=_EVENTS_HELP,
    )
    description = serializers.CharField(max_length=500, default="", allow_blank=True)


class WebhookEndpointUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    url = serializers.URLField(max_length=2048, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_FILTER_NAMES),
        required=False,
        allow_empty=True,
        help_text=_EVENTS_HELP,
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    enabled = serializers.BooleanField(
        required=False, help_text="false stops deliveries; true re-enables and clears the failure streak."
    )


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="event.id", read_only=True)
    event_type = serializers.ChoiceField(choices=EVENT_TYPES, source="event.type", read_only=True)
    endpoint_id = serializers.CharField(
        allow_null=True, read_only=True, help_text="The endpoint, or null for a per-request webhook."
    )
    url = serializers.CharField(source="target_url", read_only=True, help_text="Where the delivery is sent.")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "endpoint_id",
            "url",
            "status",
            "attempts",
            "next_attempt_at",
            "last_attempt_at",
            "last_response_status",
            "last_error",
            "delivered_at",
            "created_at",
        ]
        read_only_fields = fields


class WebhookDeliveryFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices, required=False)


class WebhookTenantDeliveryFilterSerializer(WebhookDeliveryFilterSerializer):
    target = serializers.ChoiceField(
        choices=["endpoint", "request"],
        required=False,
        help_text="`endpoint`: deliveries to webhook endpoints; `request`: to per-request `webhook` URLs.",
    )
    endpoint = serializers.CharField(required=False, max_length=32, help_text="One endpoint's deliveries.")
    generation = serializers.CharField(
        required=False, max_length=40, help_text="Deliveries of the events about one generation (its id)."
    )


class WebhookSigningSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(
        help_text="Standard Webhooks secret (`whsec_…`) that signs per-request webhook deliveries."
    )
