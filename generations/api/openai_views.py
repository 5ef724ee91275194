"""OpenAI-compatible image endpoints, so the official `openai` SDK works with `base_url` pointed at us.

Synchronous for the client: they submit a generation through the same service as the native API and wait for it
(on the event loop, see generations/api/waiting.py; at most the plan's `max_concurrent_waits` at once, beyond it
429 `too_many_waits` with Retry-After). Errors use
OpenAI's shape `{"error": {"message", "type", "param", "code"}}` with the native statuses and codes.
"""

import base64
import math
import time
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView
from generations.api.catalog import lifecycle_headers
from generations.api.waiting import pending_wait
from generations.catalog.lookup import model_get, model_id_resolve
from generations.models import Generation, GenerationImage
from generations.services.submit import GenerationRequest, generation_request_build, generation_submit
from generations.services.synchronous import generation_result_final
from generations.services.waits import wait_slot_acquire, wait_slot_release
from generations.storage import blob_read, signed_download_url
from project import errors
from project.api.errors import api_exception_handler

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
# Fields OpenAI defines that map onto our request; anything else is a vendor extra passed through `params`.
_CORE_FIELDS = {"model", "prompt", "n", "size", "quality", "response_format", "user", "negative_prompt", "seed"}



def openai_wait_seconds(*, model: str) -> float:
    """How long `/v1/images/*` waits for a result: OPENAI_COMPAT_WAIT_SECONDS, or for a model with a read timeout
    of its own (gpt-image-2 high quality answers after 90-130 s) that timeout plus OPENAI_COMPAT_WAIT_MARGIN_SECONDS,
    capped by OPENAI_COMPAT_WAIT_MAX_SECONDS (keep the web server's request timeout above it). Waiting less than
    the call may take would answer 504 for a call that succeeds and is charged."""
    model_id = model_id_resolve(model) or model
    read_timeout = settings.AIHUBMIX_MODEL_READ_TIMEOUT_SECONDS.get(model_id)
    if read_timeout is None:
        return settings.OPENAI_COMPAT_WAIT_SECONDS
    wanted = read_timeout + settings.OPENAI_COMPAT_WAIT_MARGIN_SECONDS
    return max(settings.OPENAI_COMPAT_WAIT_SECONDS, min(wanted, settings.OPENAI_COMPAT_WAIT_MAX_SECONDS))

class TooManyWaits(errors.RateLimited):
    code = "too_many_waits"
    message = (
        "This account already has its plan's number of requests waiting for an image; retry when one has "
        "finished, or use the native API (POST /v1/generations) without waiting."
    )


TOO_MANY_WAITS_RETRY_AFTER_SECONDS = 5


def openai_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = api_exception_handler(exc, context)
    if response is None:
        return None
    native = response.data.get("error", {}) if isinstance(response.data, dict) else {}
    error_type = _TYPE_BY_STATUS.get(response.status_code, "api_error")
    response.data = {
        "error": {
            "message": native.get("message", ""),
            "type": error_type,
            "param": native.get("param"),
            "code": native.get("code"),
            "request_id": native.get("request_id"),
        }
    }
    return response


class OpenAIImageRequestSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=120, default="gpt-image-1")
    prompt = serializers.CharField(max_length=32000, trim_whitespace=False)
    n = serializers.IntegerField(required=False, min_value=1, max_value=15)
    size = serializers.CharField(required=False, max_length=32)
    quality = serializers.CharField(required=False, max_length=32)
    response_format = serializers.ChoiceField(choices=["url", "b64_json"], required=False)
    negative_prompt = serializers.CharField(required=False, max_length=2000, allow_blank=True)
    seed = serializers.IntegerField(required=False)
    user = serializers.CharField(required=False, max_length=256)


class OpenAIImageEditRequestSerializer(OpenAIImageRequestSerializer):
    """For the schema: the multipart files next to the fields (`image[]` is accepted as well as `image`)."""

    image = serializers.ListField(child=serializers.FileField(), help_text="The image(s) to edit.")
    mask = serializers.FileField(required=False)


OpenAIImagesResponse = inline_serializer(
    "OpenAIImagesResponse",
    {
        "id": serializers.CharField(
            help_text="The generation's id (also in the `X-Generation-Id` header): `GET /v1/generations/{id}` finds "
            "it later, e.g. images withheld for review that `data` leaves out."
        ),
        "created": serializers.IntegerField(),
        "data": serializers.ListField(child=serializers.DictField()),
        "usage": serializers.DictField(
            required=False, help_text="OpenAI's token usage, when the upstream reported it."
        ),
    },
)
GENERATION_ID_HEADER = "X-Generation-Id"


def _form_value(value: Any) -> Any:
    """Multipart fields arrive as strings; give vendor extras the JSON types the catalog validates."""
    if not isinstance(value, str):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value


def _extras(data: Any, *, from_form: bool) -> dict[str, Any]:
    return {
        key: _form_value(data.get(key)) if from_form else data.get(key)
        for key in data
        if key not in _CORE_FIELDS and not key.startswith("image") and key != "mask"
    }


def _image_item(image: GenerationImage, *, response_format: str, request: Request) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if response_format == "b64_json":
        item["b64_json"] = base64.b64encode(blob_read(key=image.storage_key)).decode()
    else:
        url = signed_download_url(image=image)
        item["url"] = request.build_absolute_uri(url) if url.startswith("/") else url
    if image.revised_prompt:
        item["revised_prompt"] = image.revised_prompt
    return item


def _response_format(data: dict[str, Any]) -> str:
    """OpenAI's default: gpt-image models always answer base64, the others a URL."""
    if "response_format" in data:
        return data["response_format"]
    return "b64_json" if model_get(data["model"]).id.startswith("openai/gpt-image") else "url"


_DESCRIPTION = (
    "Waits for the generation and answers in OpenAI's shape, plus `id` (the generation id, also sent as the "
    "`X-Generation-Id` header on every answer after the generation was created, errors included) and OpenAI's "
    "`usage` when the upstream reports tokens. Images withheld for review are left out of `data`; fetch them "
    "later with `GET /v1/generations/{id}`."
)


class OpenAIImagesBaseView(TenantGenericAPIView):
    queryset = Generation.objects.all()
    serializer_class = OpenAIImageRequestSerializer  # for OPTIONS, which describes the body

    generation_id: str | None = None

    def get_exception_handler(self):
        return openai_exception_handler

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        # Errors after submit (failed, timed out) name the generation too: it exists and may have been charged.
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.generation_id:
            response[GENERATION_ID_HEADER] = self.generation_id
        return response

    def _run(self, request: Request, generation_request: GenerationRequest, response_format: str) -> Response:
        """Submit, then wait for the result without holding a thread (`waiting_view`) and answer with the images."""
        seconds = openai_wait_seconds(model=generation_request.model)
        slot = wait_slot_acquire(tenant=self.tenant, seconds=seconds)
        if slot is None:
            raise TooManyWaits(retry_after_seconds=TOO_MANY_WAITS_RETRY_AFTER_SECONDS)
        try:
            submitted = generation_submit(tenant=self.tenant, api_key=self.api_key, request=generation_request)
        except BaseException:
            wait_slot_release(slot=slot)
            raise
        self.generation_id = submitted.generation.public_id
        generation_id = submitted.generation.pk
        return pending_wait(
            self,
            request,
            generation_id=generation_id,
            timeout_seconds=seconds,
            slot=slot,
            answer=lambda: self._answer(request, generation_id, response_format, model=generation_request.model),
        )

    def _answer(self, request: Request, generation_id: int, response_format: str, *, model: str) -> Response:
        generation, images = generation_result_final(generation=Generation.objects.get(pk=generation_id))
        body: dict[str, Any] = {
            "id": generation.public_id,
            "created": int(time.time()),
            "data": [_image_item(image, response_format=response_format, request=request) for image in images],
        }
        if generation.usage:
            body["usage"] = generation.usage
        return Response(body, status=status.HTTP_200_OK, headers=lifecycle_headers(model=model))


class MissingInputImage(errors.InvalidRequest):
    code = "missing_input_image"
    message = "At least one image is required."


class OpenAIImageGenerationsView(OpenAIImagesBaseView):
    @extend_schema(
        operation_id="openai_images_generate",
        summary="OpenAI-compatible: create images (synchronous)",
        request=OpenAIImageRequestSerializer,
        responses={200: OpenAIImagesResponse},
        tags=["openai-compatible"],
        description=_DESCRIPTION,
    )
    def post(self, request: Request) -> Response:
        serializer = OpenAIImageRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        generation_request = generation_request_build(
            data=data,
            params=_extras(request.data, from_form=False),
            image_sources=[],
            mask_source=None,
            image_field="image",
        )
        return self._run(request, generation_request, _response_format(data))

class OpenAIImageEditsView(OpenAIImagesBaseView):
    @extend_schema(
        operation_id="openai_images_edit",
        summary="OpenAI-compatible: edit images (multipart, synchronous)",
        request={"multipart/form-data": OpenAIImageEditRequestSerializer},
        responses={200: OpenAIImagesResponse},
        tags=["openai-compatible"],
        description=_DESCRIPTION,
    )
    def post(self, request: Request) -> Response:
        serializer = OpenAIImageEditRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        uploads = [*request.FILES.getlist("image"), *request.FILES.getlist("image[]")]
        if not uploads:
            raise MissingInputImage(param="image")
        generation_request = generation_request_build(
            data=data,
            params=_extras(request.data, from_form=True),
            image_sources=uploads,
            mask_source=request.FILES.get("mask"),
            image_field="image",
        )
        return self._run(request, generation_request, _response_format(data))
