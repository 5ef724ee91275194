"""`GET /v1/generations/{id}/events`: a generation's progress as server-sent events (generations/api/streams.py)."""

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from generations.api.serializers import GenerationSerializer
from generations.api.streams import (
    TOO_MANY_STREAMS_RETRY_AFTER_SECONDS,
    JSONOrEventStream,
    PendingStream,
    StreamResponse,
    TooManyStreams,
    last_event_id,
    native_events,
)
from generations.api.views import GenerationObjectView
from generations.services.partials import partial_images_asked
from generations.services.waits import wait_slot_acquire

_DESCRIPTION = """Server-sent events (`text/event-stream`) of one generation, ending after its final state:

- `queued` (event id 1): `{"id", "status": "queued", "queue_position"}`; `queue_position` counts the tenant's queued
  generations submitted before this one (0: it starts next).
- `running` (id 2): `{"id", "status": "running"}`.
- `partial_image` (id 10 + its index): `{"id", "partial_image_index", "b64_json"}`, a preview while it runs, for a
  generation submitted with `partial_images` where the upstream streams them (GPT image models, n = 1; fewer than
  asked may come). Never stored or billed; kept for a short while only, so a late reconnect may not see them.
- `final` (id 100): the generation exactly as `GET /v1/generations/{id}` renders it (`succeeded`, `failed` or
  `canceled`). The stream then ends.

Each event carries an SSE `id:`; reconnect with `Last-Event-ID` to receive only the events after it (a generation
already final answers just `final`). A comment line (`: keep-alive`) is sent every 15 s while nothing happens, so
proxies keep the connection open. A stream open for 10 minutes is ended; reconnect with `Last-Event-ID`.

An open stream counts against the plan's `max_concurrent_waits`, like a `Prefer: wait` request: beyond it the answer
is 429 `too_many_streams` with `Retry-After`. Closing the stream changes nothing about the generation."""


class GenerationEventsView(GenerationObjectView):
    content_negotiation_class = JSONOrEventStream

    @extend_schema(
        operation_id="generations_events",
        summary="Stream a generation's progress (server-sent events)",
        description=_DESCRIPTION,
        parameters=[
            OpenApiParameter(
                "Last-Event-ID", OpenApiTypes.INT, OpenApiParameter.HEADER, required=False,
                description="Resume: only events with a greater id are sent.",
            )
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description="`event:` + `id:` + `data:` JSON per event, as described above."
            ),
        },
    )
    def get(self, request: Request, generation_id: str) -> Response:
        after = last_event_id(request.headers.get("Last-Event-ID"))
        generation = self.get_object()
        slot = wait_slot_acquire(tenant=self.tenant, seconds=settings.STREAM_MAX_SECONDS)
        if slot is None:
            raise TooManyStreams(retry_after_seconds=TOO_MANY_STREAMS_RETRY_AFTER_SECONDS)
        pk = generation.pk

        def final() -> dict[str, Any]:
            return GenerationSerializer(self.get_queryset().get(pk=pk), context={"request": request}).data

        body = native_events(
            generation_id=pk, public_id=generation.public_id, after=after, final=final,
            partials=partial_images_asked(upstream_body=generation.upstream_body or {}),
        )
        return StreamResponse(PendingStream(generation_id=pk, slot=slot, body=body))
