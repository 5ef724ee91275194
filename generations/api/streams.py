"""Server-sent event streams of a generation: the native `GET /v1/generations/{id}/events` and OpenAI's `stream: true`
on `/v1/images/*`.

Like waits (generations/api/waiting.py) a stream holds no thread: the DRF view validates, takes one of the tenant's
wait slots (the plan's `max_concurrent_waits`; streams and waits share it) and returns a `StreamResponse`;
`waiting_view` turns that into an async `StreamingHttpResponse` whose generator waits on the event loop for the
generation's notifications and re-reads its state on the shared read pool. The slot is given back when the stream
ends, including when the client hangs up. A hang-up never cancels the generation: it goes on, is stored and charged
as any other, and `GET /v1/generations/{id}` (the id is in `X-Generation-Id` from the first byte) finds it.

Native events, each with an SSE `id:` so a client reconnecting with `Last-Event-ID` gets only what it missed:
`queued` (1, with `queue_position`: the tenant's queued generations ahead of it), `running` (2), `partial_image`
(10 + its index, where the upstream streams partial images) and the final event (100) whose data is the generation
exactly as `GET /v1/generations/{id}` renders it; the stream ends after it.

Partial images come from the forwarder through the shared cache and a "partial" notice (generations/services/
partials.py); a stream reads the next index it has not sent on each wake-up, and all that are left before the final
event, so they always come in order and before it.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from generations.models import Generation
from generations.notifications import GENERATION_FINISHED, GENERATION_PARTIAL, asubscribe
from generations.selectors import generation_stream_state
from generations.services.partials import generation_partial_get
from generations.services.waits import WaitSlot
from project import errors

EVENT_STREAM = "text/event-stream"
QUEUED_ID, RUNNING_ID, PARTIAL_FIRST_ID, FINAL_ID = 1, 2, 10, 100
# Headers of the DRF answer that describe its (JSON) body, not the stream that replaces it.
_BODY_HEADERS = {"content-type", "content-length", "vary", "allow"}


class JSONOrEventStream(DefaultContentNegotiation):
    """Streaming views answer JSON whatever the client accepts, except the stream itself (always
    `text/event-stream`): `Accept: text/event-stream` is not refused with 406, and an error answered before the
    stream starts keeps the one JSON error shape."""

    def select_renderer(self, request: Any, renderers: list[Any], format_suffix: str | None = None) -> tuple[Any, str]:
        renderer = next(r for r in renderers if isinstance(r, JSONRenderer))
        return renderer, renderer.media_type


class TooManyStreams(errors.RateLimited):
    code = "too_many_streams"
    message = (
        "This account already has its plan's number of streams and waits open; retry when one has ended, or "
        "poll GET /v1/generations/{id}."
    )


class InvalidLastEventId(errors.InvalidRequest):
    code = "invalid_last_event_id"
    message = "Last-Event-ID must be an event id this stream sent (a whole number)."


TOO_MANY_STREAMS_RETRY_AFTER_SECONDS = 5


def last_event_id(value: str | None) -> int:
    """The `Last-Event-ID` header: 0 when absent."""
    if value is None or not value.strip():
        return 0
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidLastEventId(param="Last-Event-ID") from None
    if number < 0:
        raise InvalidLastEventId(param="Last-Event-ID")
    return number


def sse(event: str, data: Any, *, event_id: int | None = None) -> str:
    """One event in the wire format: `id:` (optional), `event:`, one `data:` line of JSON, a blank line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


# Events is what a stream's body generator yields: wire text, sent as it comes.
Events = AsyncIterator[str]


@dataclass(frozen=True)
class PendingStream:
    generation_id: int
    slot: WaitSlot
    # builds the body, given a read (run on the shared pool) and the release of the slot
    body: Callable[[Callable[..., Awaitable[Any]]], Events]


class StreamResponse(Response):
    """Returned by a DRF view to have `waiting_view` answer with an event stream (its headers are kept)."""

    def __init__(self, pending: PendingStream, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(status=200, headers=headers)
        self.pending_stream = pending


@dataclass(frozen=True)
class Partial:
    index: int
    b64_json: str


async def generation_states(
    *,
    generation_id: int,
    read: Callable[..., Awaitable[Any]],
    max_seconds: float,
    partials: int = 0,
    partials_from: int = 0,
) -> AsyncIterator[tuple[str, int] | Partial | None]:
    """(status, queue_position) each time the generation may have changed (a notification, or the recheck), each
    `Partial` image from `partials_from` up to `partials` (the number asked) as the forwarder relays them, and None
    every STREAM_KEEPALIVE_SECONDS without either (time to send a comment). Ends after a final status (partials
    that came before it first), or after `max_seconds`."""
    deadline = time.monotonic() + max_seconds
    keepalive = settings.STREAM_KEEPALIVE_SECONDS
    last_sent = time.monotonic()
    next_partial = partials_from
    also = (GENERATION_PARTIAL,) if partials > next_partial else ()
    async with asubscribe(GENERATION_FINISHED, key=str(generation_id), also=also) as subscription:
        previous = None
        while True:
            state = await read(generation_state_read, generation_id=generation_id)
            final = state[0] in Generation.FINAL_STATUSES
            if state != previous and not final:
                previous = state
                last_sent = time.monotonic()
                yield state
            # Read after the state: a partial is in the cache before the generation can be final, so none is missed.
            while next_partial < partials and state[0] != Generation.Status.QUEUED:
                partial = await read(generation_partial_get, generation_id=generation_id, index=next_partial)
                if partial is None:
                    break
                yield Partial(index=next_partial, b64_json=partial["b64_json"])
                next_partial += 1
                last_sent = time.monotonic()
            if final:
                yield state
                return
            now = time.monotonic()
            if now >= deadline:
                return
            if now - last_sent >= keepalive:
                last_sent = now
                yield None
            await subscription.wait(min(deadline - now, keepalive - (now - last_sent)))


def generation_state_read(*, generation_id: int) -> tuple[str, int]:
    return generation_stream_state(generation_id=generation_id)


def native_events(
    *, generation_id: int, public_id: str, after: int, final: Callable[[], dict[str, Any]], partials: int = 0
) -> Callable[[Callable[..., Awaitable[Any]]], Events]:
    """The native stream's body: `final()` (sync, run on the read pool) renders the generation as GET does;
    `partials`: how many partial images its call streams."""

    async def body(read: Callable[..., Awaitable[Any]]) -> Events:
        async for state in generation_states(
            generation_id=generation_id, read=read, max_seconds=settings.STREAM_MAX_SECONDS, partials=partials,
            partials_from=max(0, after - PARTIAL_FIRST_ID + 1),
        ):
            if state is None:
                yield ": keep-alive\n\n"
                continue
            if isinstance(state, Partial):
                data = {"id": public_id, "partial_image_index": state.index, "b64_json": state.b64_json}
                yield sse("partial_image", data, event_id=PARTIAL_FIRST_ID + state.index)
                continue
            status, position = state
            if status == Generation.Status.QUEUED and after < QUEUED_ID:
                yield sse("queued", {"id": public_id, "status": status, "queue_position": position}, event_id=QUEUED_ID)
            elif status == Generation.Status.RUNNING and after < RUNNING_ID:
                yield sse("running", {"id": public_id, "status": status}, event_id=RUNNING_ID)
            elif status in Generation.FINAL_STATUSES:
                yield sse("final", await read(final), event_id=FINAL_ID)

    return body


def stream_http_response(
    drf_response: Response,
    pending: PendingStream,
    *,
    read: Callable[..., Awaitable[Any]],
    release_connections: Callable[[], Awaitable[None]],
    release_slot: Callable[[], Awaitable[None]],
) -> StreamingHttpResponse:
    """The streaming answer replacing a finalized `StreamResponse`: its headers (X-Generation-Id and the like),
    no buffering by proxies, and the slot released however the body ends."""

    async def body() -> AsyncIterator[bytes]:
        try:
            # The request's middleware has run by now (and may have read the database): hand its connection back,
            # or every open stream would keep one out of the pool until it ends.
            await release_connections()
            async for chunk in pending.body(read):
                yield chunk.encode()
        finally:
            # shielded: a client that hangs up cancels the body, and its slot must still be given back
            await asyncio.shield(release_slot())

    response = StreamingHttpResponse(body(), content_type=EVENT_STREAM)
    for name, value in drf_response.items():
        if name.lower() not in _BODY_HEADERS:
            response[name] = value
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def openai_image_events(
    *,
    generation_id: int,
    prefix: str,
    timeout_seconds: float,
    completed: Callable[[], list[dict[str, Any]]],
    error: Callable[[Exception], dict[str, Any]],
    partials: int = 0,
    partial_fields: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], Events]:
    """OpenAI's stream (`{prefix}.partial_image` per partial image the upstream streamed, at most `partials`, with
    `partial_fields` (created_at, size, quality, background, output_format); `{prefix}.completed` per image; OpenAI's
    `error` event when it failed or timed out), with comment lines while it runs. `completed()` and `error()` are
    sync and run on the read pool."""

    def outcome() -> list[tuple[str, dict[str, Any]]]:
        try:
            return [(f"{prefix}.completed", data) for data in completed()]
        except Exception as exc:  # answered as the non-streaming endpoint answers it, in the error event
            return [("error", {"type": "error", **error(exc)})]

    async def body(read: Callable[..., Awaitable[Any]]) -> Events:
        yield ": stream opened\n\n"  # the headers (X-Generation-Id) go out now, not when the image is ready
        async for state in generation_states(
            generation_id=generation_id, read=read, max_seconds=timeout_seconds, partials=partials
        ):
            if state is None:
                yield ": keep-alive\n\n"
            elif isinstance(state, Partial):
                event = f"{prefix}.partial_image"
                yield sse(event, {"type": event, "b64_json": state.b64_json, "partial_image_index": state.index,
                                  **(partial_fields or {})})
        for event, data in await read(outcome):
            yield sse(event, data)

    return body
