import json
import re
from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.base import TenantGenericAPIView
from generations.api.serializers import (
    GenerationCreateSerializer,
    GenerationFilterSerializer,
    GenerationSerializer,
    generation_request_build,
)
from generations.api.waiting import pending_wait
from generations.models import Generation, GenerationImage
from generations.selectors import ImageNotFound, generation_list, image_get, image_serveable_get
from generations.services.idempotency import idempotency_key_check, request_fingerprint
from generations.services.inputs import input_image_load, input_images_load
from generations.services.lifecycle import generation_cancel
from generations.services.submit import GenerationRequest, Idempotency, generation_submit
from generations.services.waits import wait_slot_acquire
from generations.storage import presigned_storage_url, signed_token_image_id, storage_is_s3

# RFC 7240: a preference the server cannot use is ignored (an absurdly long number included).
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait=(\d{1,4})(?!\d)")
MAX_WAIT_SECONDS = 60


def prefer_wait_seconds(request: Request) -> int | None:
    match = _PREFER_WAIT.search(request.headers.get("Prefer", ""))
    return min(int(match.group(1)), MAX_WAIT_SECONDS) if match else None


def _uploaded(request: Request, field: str) -> list[Any]:
    return request.FILES.getlist(field) if hasattr(request, "FILES") else []


def _submit_payload(request: Request) -> Any:
    """The request's fields without its file uploads; in form bodies `params` is sent as a JSON string."""
    if not hasattr(request.data, "getlist"):
        return request.data
    data: dict[str, Any] = {}
    for key in request.data:
        if key in request.FILES:
            continue
        values = request.data.getlist(key)
        data[key] = values if key == "input_images" else values[-1]
    if isinstance(data.get("params"), str):
        try:
            data["params"] = json.loads(data["params"], parse_constant=_refuse_json_constant)
        except ValueError:
            pass  # left as a string: the serializer refuses it with a field error
    return data


def _refuse_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _fingerprint_payload(request: Request) -> Any:
    if request.content_type.startswith("multipart/"):
        files = {
            name: [f"{upload.name}:{upload.size}" for upload in request.FILES.getlist(name)]
            for name in request.FILES
        }
        return {"data": {key: request.data.getlist(key) for key in request.data if key not in request.FILES},
                "files": files}
    return request.data


def generation_request_from(data: dict[str, Any], *, uploads: list[Any], mask_upload: Any | None) -> GenerationRequest:
    sources = [*uploads, *data.get("input_images", [])]
    mask_source = mask_upload or data.get("mask")
    return generation_request_build(
        data,
        params=data.get("params") or {},
        input_images=input_images_load(sources),
        mask=input_image_load(mask_source, param="mask") if mask_source else None,
    )


class GenerationListCreateView(TenantGenericAPIView):
    queryset = Generation.objects.all()
    serializer_class = GenerationSerializer

    @extend_schema(
        operation_id="generations_list",
        summary="List generations (newest first, cursor-paginated)",
        parameters=[GenerationFilterSerializer],
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
            "`Idempotency-Key` makes retries safe: the same key and body replay the first response; a different "
            "body is 422; a request still in flight is 409. Keys are kept 24 h."
        ),
        request=GenerationCreateSerializer,
        parameters=[
            OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER),
            OpenApiParameter("Prefer", OpenApiTypes.STR, OpenApiParameter.HEADER, description="wait=N"),
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
                    method="POST", path=request.path, payload=_fingerprint_payload(request)
                ),
            )
        serializer = GenerationCreateSerializer(data=_submit_payload(request))
        serializer.is_valid(raise_exception=True)
        result = generation_submit(
            tenant=self.tenant,
            api_key=self.api_key,
            request_factory=lambda: generation_request_from(
                serializer.validated_data,
                uploads=_uploaded(request, "input_images"),
                mask_upload=request.FILES.get("mask") if hasattr(request, "FILES") else None,
            ),
            render=lambda generation: GenerationSerializer(generation, context={"request": request}).data,
            idempotency=idempotency,
        )
        if result.replayed:
            return Response(result.response.body, status=result.response.status, headers={"Idempotent-Replayed": "true"})
        slot = wait_slot_acquire(tenant=self.tenant, seconds=wait) if wait else None
        if slot is None:
            # No wait asked for, or the tenant already has its plan's number of waits open: answer at once
            # (without Preference-Applied, so the client knows it was not honoured).
            return Response(result.response.body, status=result.response.status)
        generation_id = result.generation.pk

        def answer() -> Response:
            generation = self.get_queryset().prefetch_related("images").get(pk=generation_id)
            body = GenerationSerializer(generation, context={"request": request}).data
            code = status.HTTP_200_OK if generation.is_final else status.HTTP_202_ACCEPTED
            return Response(body, status=code, headers={"Preference-Applied": f"wait={wait}"})

        return pending_wait(self, request, generation_id=generation_id, timeout_seconds=wait, slot=slot, answer=answer)


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
        image = GenerationImage.objects.filter(pk=image_id).first() if image_id is not None else None
        if image is None:
            raise ImageNotFound("This link is invalid or has expired.")
        return _file_response(image_serveable_get(image=image))
