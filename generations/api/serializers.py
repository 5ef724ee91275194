from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.money import micros_to_usd
from generations.models import Generation, GenerationImage
from generations.selectors import image_is_serveable
from generations.storage import signed_download_url


class GenerationCreateSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=120, help_text="Catalog id (`openai/gpt-image-1`) or alias.")
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


class GenerationFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Generation.Status.choices, required=False)
    model = serializers.CharField(required=False, max_length=120)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    api_key = serializers.CharField(required=False, max_length=20, help_text="An API key prefix.")


class GenerationImageSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="Short-lived signed URL; null while withheld or rejected.")
    bytes = serializers.IntegerField(source="byte_size")

    class Meta:
        model = GenerationImage
        fields = ["index", "url", "content_type", "width", "height", "bytes", "sha256", "review_status",
                  "revised_prompt"]

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_url(self, image: GenerationImage) -> str | None:
        if not image_is_serveable(image=image):
            return None
        url = signed_download_url(image=image)
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None and url.startswith("/") else url


class GenerationErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class GenerationSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id")
    object = serializers.SerializerMethodField()
    model = serializers.CharField(source="model_id")
    api_key = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    images = GenerationImageSerializer(many=True)
    unit_price_usd = serializers.SerializerMethodField()
    estimated_usd = serializers.SerializerMethodField()
    charged_usd = serializers.SerializerMethodField()

    class Meta:
        model = Generation
        fields = ["id", "object", "status", "model", "operation", "prompt", "negative_prompt", "n", "size",
                  "quality", "seed", "params", "api_key", "cancel_requested", "attempts", "error", "images",
                  "images_returned", "unit_price_usd", "estimated_usd", "charged_usd", "created_at", "started_at",
                  "finished_at"]

    def get_object(self, generation: Generation) -> str:
        return "generation"

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_api_key(self, generation: Generation) -> str | None:
        return generation.api_key.prefix if generation.api_key else None

    @extend_schema_field(GenerationErrorSerializer(allow_null=True))
    def get_error(self, generation: Generation) -> dict[str, Any] | None:
        if generation.status not in (Generation.Status.FAILED, Generation.Status.CANCELED) or not generation.error_code:
            return None
        return {"code": generation.error_code, "message": generation.error_message}

    def get_unit_price_usd(self, generation: Generation) -> str:
        return micros_to_usd(generation.unit_price_micros)

    def get_estimated_usd(self, generation: Generation) -> str:
        return micros_to_usd(generation.estimate_micros)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_charged_usd(self, generation: Generation) -> str | None:
        return None if generation.charged_micros is None else micros_to_usd(generation.charged_micros)

