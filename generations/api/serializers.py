from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.money import micros_to_usd
from generations.catalog.lookup import UnknownModel, model_id_resolve
from generations.models import Generation, GenerationImage, GenerationInputImage
from generations.rendering import (
    AbsoluteUrl,
    api_key_render,
    charged_usd_render,
    error_render,
    generation_render,
    image_url_render,
)
from project.api.serializers import StrictFieldsMixin

CANCEL_AFTER_HELP = (
    "A deadline from the submit, as Replicate's `Cancel-After`: `30s`, `5m`, `1h30m`, `1.5h`, `250ms` or bare "
    "seconds (`90`); between CANCEL_AFTER_MIN_SECONDS (1 s) and CANCEL_AFTER_MAX_SECONDS (24 h). Not started by "
    "then: canceled with error code `deadline_exceeded`, nothing charged, never sent upstream. Still running then: "
    "canceled like `POST /v1/generations/{id}/cancel` (the upstream's cost of images already produced is charged), "
    "code `deadline_exceeded`. Invalid: 400 `invalid_cancel_after`, nothing created."
)



@extend_schema_field({"oneOf": [{"type": "string", "example": "30s"}, {"type": "number", "example": 30}]})
class CancelAfterField(serializers.Field):
    """Passed through as sent: `generations.services.deadlines` refuses anything it cannot read with the one code
    `invalid_cancel_after` (a DRF type check here would answer `validation_error` for some bad values)."""

    def to_internal_value(self, data: Any) -> Any:
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class GenerationCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    model = serializers.CharField(max_length=120, help_text="Catalog id (`openai/gpt-image-2`) or alias.")
    prompt = serializers.CharField(max_length=32000, trim_whitespace=False)
    n = serializers.IntegerField(required=False, min_value=1, max_value=15)
    size = serializers.CharField(required=False, max_length=32)
    quality = serializers.CharField(required=False, max_length=32)
    negative_prompt = serializers.CharField(required=False, max_length=2000, allow_blank=True)
    seed = serializers.IntegerField(required=False, min_value=-1, max_value=2**32)
    params = serializers.DictField(required=False, default=dict, help_text="Vendor extras, see GET /v1/models.")
    input_images = serializers.ListField(
        child=serializers.CharField(max_length=30_000_000),
        required=False,
        default=list,
        max_length=16,
        help_text="Images to edit: base64 data URLs or https URLs (multipart uploads are also accepted).",
    )
    mask = serializers.CharField(required=False, max_length=30_000_000, help_text="Optional mask for edits.")
    webhook = serializers.CharField(
        required=False,
        max_length=2048,
        help_text=(
            "An https URL that receives the generation (the same object as `GET /v1/generations/{id}`) when it "
            "finishes, signed per Standard Webhooks with the secret from `GET /v1/webhook-secret`. Retried like "
            "endpoint deliveries; see `GET /v1/webhook-deliveries?target=request`. Refused (400, param `webhook`) "
            "unless it resolves to a public address."
        ),
    )
    webhook_events_filter = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        max_length=10,
        help_text=(
            "Which events to send to `webhook`: some of generation.started (or `start`, Replicate's name: the "
            "generation began running), generation.succeeded, generation.failed, generation.canceled. Default: "
            "the three terminal ones."
        ),
    )
    cancel_after = CancelAfterField(
        required=False,
        help_text=CANCEL_AFTER_HELP + " Same as the `Cancel-After` header; if both are sent they must agree.",
    )
    partial_images = serializers.IntegerField(
        required=False, min_value=0, max_value=3,
        help_text=(
            "Partial images (0-3) to send as `partial_image` events on `GET /v1/generations/{id}/events` while "
            "it runs, where the upstream streams them (GPT image models, n = 1); never stored or billed. Elsewhere "
            "ignored: the stream shows the final state only."
        ),
    )


class GenerationFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Generation.Status.choices, required=False)
    model = serializers.CharField(
        required=False, max_length=120, help_text="Catalog id or alias; an unknown model is 400 `unknown_model`."
    )
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    api_key = serializers.CharField(required=False, max_length=20, help_text="An API key prefix.")

    def validate_model(self, value: str) -> str:
        # Disabled and retired models still resolve: their past generations stay listable.
        resolved = model_id_resolve(value)
        if resolved is None:
            raise UnknownModel(value)
        return resolved


class GenerationImageSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(
        help_text="Short-lived signed URL; null while withheld, once rejected, or after the files were deleted."
    )
    bytes = serializers.IntegerField(source="byte_size")

    class Meta:
        model = GenerationImage
        fields = ["index", "url", "content_type", "width", "height", "bytes", "sha256", "review_status",
                  "revised_prompt"]

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_url(self, image: GenerationImage) -> str | None:
        return image_url_render(image, absolute_url=_absolute_url(self))


class GenerationInputImageSerializer(serializers.ModelSerializer):
    """An input image of an edit (or its mask) as it was received; the files themselves are not served back."""

    bytes = serializers.IntegerField(source="byte_size")

    class Meta:
        model = GenerationInputImage
        fields = ["index", "role", "content_type", "width", "height", "bytes", "sha256"]


def _absolute_url(serializer: serializers.Serializer) -> AbsoluteUrl | None:
    request = serializer.context.get("request")
    # Webhook bodies are rendered by a worker, without a request to take the host from (rendering falls back to
    # PUBLIC_BASE_URL).
    return request.build_absolute_uri if request is not None else None


class GenerationErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class GenerationSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id")
    object = serializers.SerializerMethodField()
    model = serializers.CharField(source="model_id", help_text="The model that ran and was charged.")
    requested_model = serializers.SerializerMethodField(
        help_text="The model asked for, when a retired model was served by its replacement; else null."
    )
    api_key = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    images = GenerationImageSerializer(many=True)
    input_images = GenerationInputImageSerializer(
        many=True, help_text="An edit's input images and mask, as received (empty for a generation from text)."
    )
    unit_price_usd = serializers.SerializerMethodField()
    estimated_usd = serializers.SerializerMethodField()
    charged_usd = serializers.SerializerMethodField()
    usage = serializers.JSONField(
        allow_null=True, help_text="Token usage as the upstream reported it (OpenAI's `usage` object), or null."
    )
    webhook = serializers.SerializerMethodField()
    webhook_events_filter = serializers.ListField(child=serializers.CharField())
    deadline_at = serializers.DateTimeField(
        allow_null=True,
        help_text="The `Cancel-After` deadline (submit time + duration), or null. Past it the generation is "
        "canceled with error code `deadline_exceeded`.",
    )
    files_deleted_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the input and output images were deleted (DELETE, or the retention period); then null URLs.",
    )

    class Meta:
        model = Generation
        fields = ["id", "object", "status", "model", "requested_model", "operation", "prompt", "negative_prompt", "n", "size",
                  "quality", "seed", "params", "api_key", "cancel_requested", "deadline_at", "attempts", "error",
                  "images", "input_images", "images_returned", "unit_price_usd", "estimated_usd", "charged_usd", "usage",
                  "webhook",
                  "webhook_events_filter", "created_at", "started_at", "finished_at", "files_deleted_at"]

    def to_representation(self, generation: Generation) -> dict[str, Any]:
        """`generations.rendering` (shared with webhook payloads), instead of DRF's field loop: the declared fields
        stay the schema; tests/generations/test_serializers.py pins the two renderings to each other."""
        return generation_render(generation, absolute_url=_absolute_url(self))

    def get_object(self, generation: Generation) -> str:
        return "generation"

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_requested_model(self, generation: Generation) -> str | None:
        return generation.requested_model_id or None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_api_key(self, generation: Generation) -> str | None:
        return api_key_render(generation)

    @extend_schema_field(GenerationErrorSerializer(allow_null=True))
    def get_error(self, generation: Generation) -> dict[str, Any] | None:
        return error_render(generation)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_webhook(self, generation: Generation) -> str | None:
        return generation.webhook_url or None

    def get_unit_price_usd(self, generation: Generation) -> str:
        return micros_to_usd(generation.unit_price_micros)

    def get_estimated_usd(self, generation: Generation) -> str:
        return micros_to_usd(generation.estimate_micros)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_charged_usd(self, generation: Generation) -> str | None:
        return charged_usd_render(generation)

