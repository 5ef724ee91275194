"""OpenAI-compatible family: `POST /images/generations` (JSON) and `POST /images/edits` (multipart).

With `stream: true` (and `partial_images`) in the body, OpenAI's GPT image models answer `text/event-stream`:
`image_generation.partial_image` / `image_edit.partial_image` events (a preview each, `partial_image_index` 0..), then
`*.completed` with the image and its `usage` (NOTES.md, "What our OpenAI-compatible clients expect"). Each partial
is handed to the caller as it comes; the completed event is the answer, read like a non-streamed one. Fewer partials
than asked (or none) is normal: the image may finish first.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

from generations.providers.base import (
    ContentPolicyError,
    MalformedResponse,
    PermanentProviderError,
    ProviderCall,
    ProviderError,
    ProviderResult,
    UpstreamRequest,
    message_in,
    outputs_from_container,
    parse_success,
    trace_id_from,
)

EVENT_STREAM = "text/event-stream"
# (partial_image_index, base64 image): called for each partial image, in the order they arrive.
PartialSink = Callable[[int, str], Awaitable[None]]
_MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation", "content_filter"})


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def build_request(call: ProviderCall) -> UpstreamRequest:
    if call.operation == "generate":
        return UpstreamRequest(method="POST", path="/images/generations", json=call.body)
    # OpenAI's own SDK names several images `image[]`; a single one is plain `image`.
    field_name = "image[]" if len(call.images) > 1 else "image"
    files = [(field_name, (image.filename, image.data, image.content_type)) for image in call.images]
    if call.mask is not None:
        files.append(("mask", (call.mask.filename, call.mask.data, call.mask.content_type)))
    data = {key: _form_value(value) for key, value in call.body.items() if value is not None}
    return UpstreamRequest(method="POST", path="/images/edits", data=data, files=files)


def parse_response(response: httpx.Response) -> ProviderResult:
    return parse_success(response)


def streams(call: ProviderCall) -> bool:
    """Whether the call asks for OpenAI's streaming mode (the catalog's validation set `stream` for it)."""
    return call.family == "openai_compat" and call.body.get("stream") is True


def is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").partition(";")[0].strip().lower() == EVENT_STREAM


def _stream_error(data: dict[str, Any], trace_id: str | None) -> ProviderError:
    """OpenAI's `error` event (`{"type": "error", "error": {"code", "message", ...}}`) after a 2xx: the request
    was delivered, so it is never sent again; a moderation refusal is a content-policy failure."""
    error = data.get("error") if isinstance(data.get("error"), dict) else data
    code = error.get("code") if isinstance(error.get("code"), str) else ""
    message = message_in(error) or "the upstream's event stream reported an error"
    if code in _MODERATION_CODES:
        return ContentPolicyError(message, trace_id=trace_id)
    return PermanentProviderError(message, code="upstream_stream_error", trace_id=trace_id, detail=code)


async def stream_read(response: httpx.Response, *, on_partial: PartialSink | None) -> ProviderResult:
    """Read a 2xx event stream to its end: partials to `on_partial` as they come, the completed event(s) as the
    answer. A stream without a completed image was delivered (and probably charged): `MalformedResponse`, kept for
    staff, never resent."""
    trace_id = trace_id_from(response)
    outputs = []
    usage: dict[str, Any] | None = None
    seen: list[str] = []  # the event types, for staff when the stream makes no sense (never the images)
    partials = 0
    try:
        async for event in EventSource(response).aiter_sse():
            try:
                data = json.loads(event.data) if event.data else {}
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise MalformedResponse(
                    "the upstream's event stream carried data that is not a JSON object", trace_id=trace_id,
                    body=json.dumps({"events": [*seen, event.event]}),
                )
            kind = data.get("type") if isinstance(data.get("type"), str) else event.event
            seen.append(kind)
            if kind.endswith(".partial_image"):
                index = data.get("partial_image_index")
                index = index if isinstance(index, int) and not isinstance(index, bool) else partials
                partials += 1
                image = data.get("b64_json")
                if on_partial is not None and isinstance(image, str) and image:
                    await on_partial(index, image)
            elif kind.endswith(".completed"):
                outputs.extend(outputs_from_container(data))
                if isinstance(data.get("usage"), dict):
                    usage = data["usage"]
            elif kind == "error":
                raise _stream_error(data, trace_id)
    except SSEError as error:
        raise MalformedResponse(str(error), trace_id=trace_id) from error
    if not outputs:
        raise MalformedResponse(
            "the upstream's event stream ended without the completed image", code="upstream_stream_incomplete",
            trace_id=trace_id, body=json.dumps({"events": seen}),
        )
    return ProviderResult(outputs=outputs, usage=usage, upstream_task_id=None, trace_id=trace_id)
