"""OpenAI-compatible image endpoints, so the official `openai` SDK works with `base_url` pointed at us.

Synchronous for the client: they submit a generation through the same service as the native API and wait for it
(on the event loop, see generations/api/waiting.py; at most the plan's `max_concurrent_waits` at once, beyond it
429 `too_many_waits` with Retry-After). Errors use
OpenAI's shape `{"error": {"message", "type", "param", "code"}}` with the native statuses and codes.
"""

import base64
import math
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView
from generations.api.serializers import generation_request_build
from generations.api.waiting import pending_wait
from generations.catalog import model_get
from generations.models import Generation, GenerationImage
from generations.selectors import image_list_serveable
from generations.services.inputs import input_image_load, input_images_load
from generations.services.lifecycle import GenerationNotCancelable, generation_cancel
from generations.services.submit import GenerationRequest, generation_submit
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


class GenerationTimedOut(errors.TimedOut):
    code = "generation_timeout"
    message = "The generation did not finish in time and was canceled."


class TooManyWaits(errors.RateLimited):
    code = "too_many_waits"
    message = (
        "This account already has its plan's number of requests waiting for an image; retry when one has "
        "finished, or use the native API (POST /v1/generations) without waiting."
    )


TOO_MANY_WAITS_RETRY_AFTER_SECONDS = 5


class GenerationFailed(errors.UpstreamFailed):
    code = "upstream_error"


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


OpenAIImagesResponse = inline_serializer(
    "OpenAIImagesResponse",
    {
        "created": serializers.IntegerField(),
        "data": serializers.ListField(child=serializers.DictField()),
    },
)


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


class OpenAIImagesBaseView(TenantGenericAPIView):
    queryset = Generation.objects.all()

    def get_exception_handler(self):
        return openai_exception_handler

    def _run(self, request: Request, build: Callable[[dict[str, Any]], GenerationRequest]) -> Response:
        """Validate the OpenAI-shaped body, `build` the submit request from it, then answer once it is final."""
        serializer = OpenAIImageRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        generation_request = build(data)
        response_format = _response_format(data)
        seconds = settings.OPENAI_COMPAT_WAIT_SECONDS
        slot = wait_slot_acquire(tenant=self.tenant, seconds=seconds)
        if slot is None:
            raise TooManyWaits(retry_after_seconds=TOO_MANY_WAITS_RETRY_AFTER_SECONDS)
        try:
            result = generation_submit(
                tenant=self.tenant,
                api_key=self.api_key,
                request_factory=lambda: generation_request,
                render=lambda generation: {"id": generation.public_id},
            )
        except BaseException:
            wait_slot_release(slot=slot)
            raise
        generation_id = result.generation.pk
        return pending_wait(
            self,
            request,
            generation_id=generation_id,
            timeout_seconds=seconds,
            slot=slot,
            answer=lambda: self._answer(request, generation_id, response_format),
        )

    def _answer(self, request: Request, generation_id: int, response_format: str) -> Response:
        generation = Generation.objects.get(pk=generation_id)
        if not generation.is_final:
            try:
                generation_cancel(generation=generation)
                raise GenerationTimedOut()
            except GenerationNotCancelable:
                generation = Generation.objects.get(pk=generation.pk)  # it finished in the meantime
        if generation.status != Generation.Status.SUCCEEDED:
            raise _failure_error(generation)
        images = image_list_serveable(generation=generation)
        body = {
            "created": int(time.time()),
            "data": [_image_item(image, response_format=response_format, request=request) for image in images],
        }
        return Response(body, status=status.HTTP_200_OK)


class ContentPolicyViolation(errors.InvalidRequest):
    code = "content_policy_violation"


class MissingInputImage(errors.InvalidRequest):
    code = "missing_input_image"
    message = "At least one image is required."


def _failure_error(generation: Generation) -> errors.DomainError:
    if generation.error_code == "content_policy_violation":
        return ContentPolicyViolation(generation.error_message or "Rejected by the content policy.")
    return GenerationFailed(
        generation.error_message or "The image could not be generated.", code=generation.error_code or "upstream_error"
    )


class OpenAIImageGenerationsView(OpenAIImagesBaseView):
    @extend_schema(
        operation_id="openai_images_generate",
        summary="OpenAI-compatible: create images (synchronous)",
        request=OpenAIImageRequestSerializer,
        responses={200: OpenAIImagesResponse},
        tags=["openai-compatible"],
    )
    def post(self, request: Request) -> Response:
        return self._run(
            request, lambda data: generation_request_build(data, params=_extras(request.data, from_form=False))
        )


class OpenAIImageEditsView(OpenAIImagesBaseView):
    @extend_schema(
        operation_id="openai_images_edit",
        summary="OpenAI-compatible: edit images (multipart, synchronous)",
        request={"multipart/form-data": OpenAIImageRequestSerializer},
        responses={200: OpenAIImagesResponse},
        tags=["openai-compatible"],
    )
    def post(self, request: Request) -> Response:
        return self._run(request, lambda data: _edit_request(request, data))


def _edit_request(request: Request, data: dict[str, Any]) -> GenerationRequest:
    uploads = [*request.FILES.getlist("image"), *request.FILES.getlist("image[]")]
    if not uploads:
        raise MissingInputImage(param="image")
    mask = request.FILES.get("mask")
    return generation_request_build(
        data,
        params=_extras(request.data, from_form=True),
        input_images=input_images_load(uploads, field="image"),
        mask=input_image_load(mask, param="mask") if mask else None,
    )
