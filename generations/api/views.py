import re
from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.base import TenantGenericAPIView
from accounts.services import actor_from_api
from generations.api.catalog import lifecycle_headers
from generations.api.serializers import (
    CANCEL_AFTER_HELP,
    GenerationCreateSerializer,
    GenerationFilterSerializer,
    GenerationSerializer,
)
from generations.api.waiting import pending_wait
from generations.models import Generation, GenerationImage
from generations.selectors import (
    ImageNotFound,
    generation_list,
    image_get,
    image_serveable_get,
)
from generations.services.cancel import generation_cancel
from generations.services.deadlines import CANCEL_AFTER_HEADER
from generations.services.files import generation_files_delete
from generations.services.idempotency import (
    IdempotentReplay,
    idempotency_key_check,
    idempotency_replay,
    request_fingerprint,
)
from generations.services.submit import Idempotency, generation_request_build, generation_submit
from generations.services.waits import WaitSlot, wait_slot_acquire
from generations.storage import presigned_storage_url, signed_token_image_id, storage_is_s3
from project.api.parsers import json_loads_limited

# RFC 7240: a preference the server cannot use is ignored (an absurdly long number included).
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait=(\d{1,4})(?!\d)")
MAX_WAIT_SECONDS = 60


def prefer_wait_seconds(request: Request) -> int | None:
    match = _PREFER_WAIT.search(request.headers.get("Prefer", ""))
    return min(int(match.group(1)), MAX_WAIT_SECONDS) if match else None


def _submit_payload(request: Request) -> Any:
    """The request's fields without its file uploads; in form bodies `params` is sent as a JSON string."""
    if not hasattr(request.data, "getlist"):
        return request.data
    data: dict[str, Any] = {}
    for key in request.data:
        if key in request.FILES:
            continue
        values = request.data.getlist(key)
        data[key] = values if key in ("input_images", "webhook_events_filter") else values[-1]
    if isinstance(data.get("params"), str):
        try:
            data["params"] = json_loads_limited(data["params"])
        except ValueError:
            pass  # left as a string: the serializer refuses it with a field error
    return data


def _fingerprint_payload(request: Request) -> Any:
    if request.content_type.startswith("multipart/"):
        files = {
            name: [f"{upload.name}:{upload.size}" for upload in request.FILES.getlist(name)]
            for name in request.FILES
        }
        return {"data": {key: request.data.getlist(key) for key in request.data if key not in request.FILES},
                "files": files}
    return request.data


def _fingerprint_headers(request: Request) -> dict[str, str]:
    """The headers that change what a submit creates: the same key with another `Cancel-After` is another request."""
    value = request.headers.get(CANCEL_AFTER_HEADER)
    return {CANCEL_AFTER_HEADER: value} if value is not None else {}


# Built once: constructing a DRF serializer copies all its fields, which cost more than the rest of a submit's
# Python. Both are used without per-request state: `run_validation` returns the validated data (or raises the same
# ValidationError as `is_valid`), `to_representation` renders one object.
_SUBMIT_SERIALIZER = GenerationCreateSerializer()
_SUBMITTED_SERIALIZER = GenerationSerializer()


class GenerationListCreateView(TenantGenericAPIView):
    queryset = Generation.objects.all()
    serializer_class = GenerationSerializer

    @extend_schema(
        operation_id="generations_list",
        summary="List generations (newest first, cursor-paginated)",
        parameters=[GenerationFilterSerializer],
        responses={200: GenerationSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        filters = GenerationFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        queryset = generation_list(
            tenant=self.tenant,
            status=values.get("status"),
            model=values.get("model"),
            created_after=values.get("created_after"),
            created_before=values.get("created_before"),
            api_key_prefix=values.get("api_key"),
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(GenerationSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        operation_id="generations_create",
        summary="Submit a generation",
        description=(
            "Validates, prices and reserves the estimated amount, then queues the work: 202 with the generation. "
            "`Prefer: wait=N` (N ≤ 60) waits for the final state (200 when final; the plan caps how many requests "
            "may wait at once, beyond it the answer is an immediate 202 without `Preference-Applied`). "
            "`Idempotency-Key` makes retries safe: the same key and body create and charge nothing again and "
            "answer the generation as it is now, with `Idempotent-Replayed: true` (200 once final, else 202; "
            "`Prefer: wait=N` waits for it as on the first request); a different body is 422; a request still in "
            "flight is 409. Keys are kept 24 h."
        ),
        request=GenerationCreateSerializer,
        parameters=[
            OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER),
            OpenApiParameter("Prefer", OpenApiTypes.STR, OpenApiParameter.HEADER, description="wait=N"),
            OpenApiParameter(
                CANCEL_AFTER_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, description=CANCEL_AFTER_HELP
            ),
        ],
        responses={200: GenerationSerializer, 202: GenerationSerializer},
    )
    def post(self, request: Request) -> Response:
        wait = prefer_wait_seconds(request)
        idempotency = None
        if "Idempotency-Key" in request.headers:
            idempotency = Idempotency(
                key=idempotency_key_check(request.headers["Idempotency-Key"]),
                fingerprint=request_fingerprint(
                    method="POST", path=request.path, payload=_fingerprint_payload(request),
                    headers=_fingerprint_headers(request),
                ),
            )
            replay = idempotency_replay(tenant=self.tenant, key=idempotency.key, fingerprint=idempotency.fingerprint)
            if replay is not None:
                return self._replayed(request, replay, wait=wait)
        data = _SUBMIT_SERIALIZER.run_validation(_submit_payload(request))
        files = getattr(request, "FILES", None)
        generation_request = generation_request_build(
            data=data,
            params=data.get("params") or {},
            image_sources=[*(files.getlist("input_images") if files else []), *data.get("input_images", [])],
            mask_source=(files.get("mask") if files else None) or data.get("mask"),
            image_field="input_images",
            cancel_after_header=request.headers.get(CANCEL_AFTER_HEADER),
            partial_images=data.get("partial_images") or 0,
        )
        result = generation_submit(
            tenant=self.tenant, api_key=self.api_key, request=generation_request, idempotency=idempotency
        )
        if result.replay is not None:
            return self._replayed(request, result.replay, wait=wait)
        generation = result.generation
        body = _SUBMITTED_SERIALIZER.to_representation(generation)  # no images yet, so no URLs to build
        headers = lifecycle_headers(model=data["model"])
        slot = wait_slot_acquire(tenant=self.tenant, seconds=wait) if wait else None
        if slot is None:
            # No wait asked for, or the tenant already has its plan's number of waits open: answer at once
            # (without Preference-Applied, so the client knows it was not honoured).
            return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)
        return self._answer_after_wait(request, generation_id=generation.pk, wait=wait, slot=slot, headers=headers)

    def _answer_now(self, request: Request, *, generation_id: int, headers: dict[str, str]) -> Response:
        """The generation as it is now: 200 once final, 202 while it is still queued or running."""
        generation = self.get_queryset().select_related("api_key").prefetch_related("images").get(pk=generation_id)
        body = GenerationSerializer(generation, context={"request": request}).data
        code = status.HTTP_200_OK if generation.is_final else status.HTTP_202_ACCEPTED
        return Response(body, status=code, headers=headers)

    def _answer_after_wait(
        self, request: Request, *, generation_id: int, wait: int, slot: WaitSlot, headers: dict[str, str]
    ) -> Response:
        headers = {"Preference-Applied": f"wait={wait}", **headers}
        return pending_wait(
            self, request, generation_id=generation_id, timeout_seconds=wait, slot=slot,
            answer=lambda: self._answer_now(request, generation_id=generation_id, headers=headers),
        )

    def _replayed(self, request: Request, replay: IdempotentReplay, *, wait: int | None) -> Response:
        """A retry of a request that committed (its client lost the answer, e.g. to a dropped connection): nothing
        is created or charged again, and it is answered as the first request would be if it were answered now —
        the generation's current status and images, 200 once final and 202 before, and with `Prefer: wait` a wait
        for the final state as the first request had. The retrying client needs the truth, not the first answer's
        snapshot: a replayed 202 `queued` for a generation that finished long ago sends it polling for nothing
        (or, after a `Prefer: wait` that had answered 200, tells it the opposite of what it was told)."""
        if replay.generation_id is None:
            raise NotFound("The generation created with this Idempotency-Key no longer exists.")
        generation = self.get_queryset().only("model_id", "requested_model_id", "status").get(pk=replay.generation_id)
        headers = {
            **lifecycle_headers(model=generation.requested_model_id or generation.model_id),
            "Idempotent-Replayed": "true",
        }
        slot = wait_slot_acquire(tenant=self.tenant, seconds=wait) if wait and not generation.is_final else None
        if slot is None:
            return self._answer_now(request, generation_id=generation.pk, headers=headers)
        return self._answer_after_wait(request, generation_id=generation.pk, wait=wait, slot=slot, headers=headers)


class GenerationObjectView(TenantGenericAPIView):
    """Base for views of one generation, looked up by public id within the request's tenant."""

    queryset = Generation.objects.select_related("api_key").prefetch_related("images")
    serializer_class = GenerationSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "generation_id"


class GenerationDetailView(GenerationObjectView):
    @extend_schema(operation_id="generations_retrieve", summary="Get a generation, with signed image URLs")
    def get(self, request: Request, generation_id: str) -> Response:
        return Response(GenerationSerializer(self.get_object(), context={"request": request}).data)

    @extend_schema(
        operation_id="generations_delete",
        summary="Delete a finished generation's images",
        description=(
            "Removes the generation's input and output image files from storage. The generation stays readable "
            "with its metadata and charges (`files_deleted_at` set, image `url` null); its image downloads and "
            "signed URLs answer 410 `gone` from then on. Deleting again is harmless (204). A queued or running "
            "generation answers 409 `generation_not_finished`: cancel it first.\n\n"
            "**Retention.** Files are also deleted automatically once a finished generation is older than the "
            "tenant's retention period (set by the plan, overridable per tenant; none by default). The purge "
            "runs every hour and works exactly like this call."
        ),
        request=None,
        responses={204: None},
    )
    def delete(self, request: Request, generation_id: str) -> Response:
        generation_files_delete(generation=self.get_object(), actor=actor_from_api(request=request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class GenerationCancelView(GenerationObjectView):
    @extend_schema(
        operation_id="generations_cancel",
        summary="Cancel a generation",
        description=(
            "A queued generation is canceled at once and nothing is charged. A running one is marked; its result is "
            "dropped when it arrives and the tenant is charged only what the upstream charged us for it. A finished "
            "generation answers 409 `generation_not_cancelable`."
        ),
        request=None,
    )
    def post(self, request: Request, generation_id: str) -> Response:
        generation = generation_cancel(generation=self.get_object())
        return Response(GenerationSerializer(generation, context={"request": request}).data)


def _file_response(image: GenerationImage) -> HttpResponse:
    if storage_is_s3():
        return HttpResponseRedirect(presigned_storage_url(image=image))
    response = FileResponse(default_storage.open(image.storage_key, "rb"), content_type=image.content_type)
    response["Content-Length"] = str(image.byte_size)
    response["Cache-Control"] = "private, max-age=300"
    return response


class GenerationImageView(GenerationObjectView):
    @extend_schema(
        operation_id="generations_image",
        summary="Download one image (bytes, or a redirect to a presigned URL on S3)",
        responses={
            (200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY),
            302: OpenApiResponse(description="Redirect to a presigned storage URL"),
            410: OpenApiResponse(description="gone: the files were deleted"),
            451: OpenApiResponse(description="content_rejected"),
        },
    )
    def get(self, request: Request, generation_id: str, index: int) -> HttpResponse:
        return _file_response(image_serveable_get(image=image_get(generation=self.get_object(), index=index)))


class SignedImageView(APIView):
    """Serves a signed, short-lived image URL without an API key (filesystem storage only)."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    schema = None

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        image_id = signed_token_image_id(token)
        image = (
            GenerationImage.objects.select_related("generation").filter(pk=image_id).first()
            if image_id is not None
            else None
        )
        if image is None:
            raise ImageNotFound("This link is invalid or has expired.")
        return _file_response(image_serveable_get(image=image))
