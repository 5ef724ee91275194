"""OpenAI-compatible image endpoints, so the official `openai` SDK works with `base_url` pointed at us.

Synchronous for the client: they submit a generation through the same service as the native API and wait for it
(on the event loop, see generations/api/waiting.py; at most the plan's `max_concurrent_waits` at once, beyond it
429 `too_many_waits` with Retry-After). Errors use
OpenAI's shape `{"error": {"message", "type", "param", "code"}}` with the native statuses and codes
(generations/api/openai_errors.py), on every path under /v1/images/.
"""

import base64
import math
import time
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView
from generations.api.catalog import lifecycle_headers
from generations.api.openai_errors import openai_error_body
from generations.api.serializers import CANCEL_AFTER_HELP, CancelAfterField
from generations.api.streams import JSONOrEventStream, PendingStream, StreamResponse, openai_image_events
from generations.api.waiting import pending_wait
from generations.catalog.lookup import model_get, model_id_resolve
from generations.models import Generation, GenerationImage
from generations.services.deadlines import CANCEL_AFTER_HEADER
from generations.services.partials import partial_images_asked
from generations.services.submit import GenerationRequest, generation_request_build, generation_submit
from generations.services.synchronous import generation_result_final
from generations.services.waits import wait_slot_acquire, wait_slot_release
from generations.storage import blob_read, signed_download_url
from project import errors
from project.api.errors import api_exception_handler

# Fields OpenAI defines that map onto our request; anything else is a vendor extra passed through `params`.
_CORE_FIELDS = {
    "model", "prompt", "n", "size", "quality", "response_format", "user", "negative_prompt", "seed", "stream",
    "partial_images", "cancel_after",
}



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
    response.data = openai_error_body(response.data, response.status_code)
    return response


class OpenAIImageRequestSerializer(serializers.Serializer):
    # OpenAI's SDK lets `model` be left out; gpt-image-1 is retired, so the default is its successor.
    model = serializers.CharField(max_length=120, default="gpt-image-2")
    prompt = serializers.CharField(max_length=32000, trim_whitespace=False)
    n = serializers.IntegerField(required=False, min_value=1, max_value=15)
    size = serializers.CharField(required=False, max_length=32)
    quality = serializers.CharField(required=False, max_length=32)
    response_format = serializers.ChoiceField(choices=["url", "b64_json"], required=False)
    negative_prompt = serializers.CharField(required=False, max_length=2000, allow_blank=True)
    seed = serializers.IntegerField(required=False)
    user = serializers.CharField(required=False, max_length=256)
    stream = serializers.BooleanField(
        default=False, help_text="Answer `text/event-stream` with OpenAI's image events instead of one JSON body."
    )
    partial_images = serializers.IntegerField(
        required=False, min_value=0, max_value=3,
        help_text="With `stream`: at most this many partial images, sent as the upstream streams them (GPT image "
        "models, n = 1; OpenAI itself may send fewer); the completed event always comes. Never stored or billed.",
    )
    cancel_after = CancelAfterField(required=False, help_text=CANCEL_AFTER_HELP + " Same as the `Cancel-After` header.")


class OpenAIImageEditRequestSerializer(OpenAIImageRequestSerializer):
    """For the schema only: the multipart files next to the fields. The view reads the files itself, from `image`
    and from `image[]` (the `openai` SDK sends a list of images as repeated `image[]` parts, as `curl -F
    "image[]=@in.png"` does), which a DRF field of one name could not accept."""

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
    "later with `GET /v1/generations/{id}`.\n\n"
    "**Streaming.** With `stream: true` the answer is `text/event-stream` in OpenAI's shape: first the "
    "partial-image events (`image_generation.partial_image`, edits: `image_edit.partial_image`; at most "
    "`partial_images`, each with `partial_image_index`) as the upstream streams them, which GPT image models with "
    "n = 1 do (previews, never stored or billed; fewer than asked may come, as from OpenAI); other models send none. "
    "Then `image_generation.completed` (edits: `image_edit.completed`) per image with `b64_json`, `created_at`, "
    "`size`, `quality`, `background`, `output_format` and `usage`. A failure is OpenAI's `error` event. Comment "
    "lines keep the connection open meanwhile, and `X-Generation-Id` comes with the headers: a client that hangs up can find the generation, which goes on, is "
    "stored and charged as without streaming. A stream counts against `max_concurrent_waits` like a wait."
)


_CANCEL_AFTER_PARAMETER = OpenApiParameter(
    CANCEL_AFTER_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, description=CANCEL_AFTER_HELP
)


class OpenAIImagesBaseView(TenantGenericAPIView):
    queryset = Generation.objects.all()
    serializer_class = OpenAIImageRequestSerializer  # for OPTIONS, which describes the body

    generation_id: str | None = None
    event_prefix = "image_generation"  # OpenAI's stream event types: image_generation.* / image_edit.*
    content_negotiation_class = JSONOrEventStream

    def get_exception_handler(self):
        return openai_exception_handler

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        # Errors after submit (failed, timed out) name the generation too: it exists and may have been charged.
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.generation_id:
            response[GENERATION_ID_HEADER] = self.generation_id
        return response

    def _run(
        self, request: Request, generation_request: GenerationRequest, response_format: str, *, stream: bool = False
    ) -> Response:
        """Submit, then wait for the result without holding a thread (`waiting_view`) and answer with the images,
        in one body or (`stream`) as OpenAI's server-sent events (generations/api/streams.py)."""
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
        if stream:
            generation = submitted.generation
            body = openai_image_events(
                generation_id=generation_id,
                prefix=self.event_prefix,
                timeout_seconds=seconds,
                completed=lambda: self._completed(generation_id, response_format),
                error=lambda exc: self.handle_exception(exc).data,
                partials=partial_images_asked(upstream_body=generation.upstream_body or {}),
                partial_fields=self._image_fields(generation),
            )
            headers = lifecycle_headers(model=generation_request.model)
            return StreamResponse(PendingStream(generation_id=generation_id, slot=slot, body=body), headers=headers)
        return pending_wait(
            self,
            request,
            generation_id=generation_id,
            timeout_seconds=seconds,
            slot=slot,
            answer=lambda: self._answer(request, generation_id, response_format, model=generation_request.model),
        )

    @staticmethod
    def _image_fields(generation: Generation) -> dict[str, Any]:
        """What OpenAI's partial and completed events say about the image besides the image itself."""
        params = generation.params or {}
        return {
            "created_at": int(generation.created_at.timestamp()),
            "size": generation.size or "auto",
            "quality": generation.quality or "auto",
            "background": params.get("background", "auto"),
            "output_format": params.get("output_format", "png"),
        }

    def _completed(self, generation_id: int, response_format: str) -> list[dict[str, Any]]:
        """The `*.completed` events' data, one per image (an error raised is sent as OpenAI's `error` event)."""
        generation, images = generation_result_final(generation=Generation.objects.get(pk=generation_id))
        usage = generation.usage or {
            "input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
        }
        return [
            {
                "type": f"{self.event_prefix}.completed",
                "b64_json": base64.b64encode(blob_read(key=image.storage_key)).decode(),
                **self._image_fields(generation),
                "usage": usage,
            }
            for image in images
        ]

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
        parameters=[_CANCEL_AFTER_PARAMETER],
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
            cancel_after_header=request.headers.get(CANCEL_AFTER_HEADER),
            # partials exist only for a stream: OpenAI ignores partial_images without `stream`
            partial_images=(data.get("partial_images") or 0) if data["stream"] else 0,
        )
        return self._run(request, generation_request, _response_format(data), stream=data["stream"])


class OpenAIImageEditsView(OpenAIImagesBaseView):
    event_prefix = "image_edit"

    @extend_schema(
        operation_id="openai_images_edit",
        summary="OpenAI-compatible: edit images (multipart, synchronous)",
        request={"multipart/form-data": OpenAIImageEditRequestSerializer},
        responses={200: OpenAIImagesResponse},
        tags=["openai-compatible"],
        description=_DESCRIPTION,
        parameters=[_CANCEL_AFTER_PARAMETER],
    )
    def post(self, request: Request) -> Response:
        serializer = OpenAIImageRequestSerializer(data=request.data)  # the fields; the files are read below
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
            cancel_after_header=request.headers.get(CANCEL_AFTER_HEADER),
            # partials exist only for a stream: OpenAI ignores partial_images without `stream`
            partial_images=(data.get("partial_images") or 0) if data["stream"] else 0,
        )
        return self._run(request, generation_request, _response_format(data), stream=data["stream"])
