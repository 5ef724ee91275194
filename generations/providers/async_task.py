"""Async task family (FLUX Kontext, FLUX 2): a predictions call answers a task id, then `GET <tasks_url>/<id>`
is polled until the task is ready. Poll answers follow Black Forest Labs' shape:
`{"id": ..., "status": "Pending"|"Ready"|"Request Moderated"|"Content Moderated"|"Error"|"Task not found",
"result": {"sample": "<image url>"}}`.
"""

from typing import Any

import httpx

from generations.providers import predictions
from generations.providers.base import (
    ContentPolicyError,
    MalformedResponse,
    PermanentProviderError,
    ProviderCall,
    ProviderResult,
    RawOutput,
    UpstreamRequest,
    message_in,
    parse_json_success,
    result_from_payload,
)

_MODERATED = frozenset({"request moderated", "content moderated", "moderated"})
_FAILED = frozenset({"error", "failed", "failure"})
_NOT_FOUND = frozenset({"task not found", "not found"})
_READY = frozenset({"ready", "succeeded", "success", "completed"})


def build_request(call: ProviderCall) -> UpstreamRequest:
    return predictions.build_request(call)


def parse_submission(response: httpx.Response) -> str | ProviderResult:
    """The task id to poll; or, when the upstream answered in one step after all, the images themselves.
    Anything else raises MalformedResponse (kept for staff, never resent: the task may be running and paid)."""
    payload, trace_id = parse_json_success(response)
    items = payload.get("output") if isinstance(payload, dict) else None
    candidates = (items if isinstance(items, list) else [items]) + [payload]
    for item in candidates:
        if isinstance(item, dict):
            for key in ("taskId", "task_id"):
                if isinstance(item.get(key), str) and item[key]:
                    return item[key]
            # BFL's own shape: an `id` is a task only beside its polling URL.
            if isinstance(item.get("id"), str) and item["id"] and item.get("polling_url"):
                return item["id"]
    try:
        return result_from_payload(payload, trace_id=trace_id, body=response.text)
    except MalformedResponse:
        raise MalformedResponse(
            "the task submission answered without a task id or an image", trace_id=trace_id, body=response.text
        ) from None


def _samples(result: Any) -> list[RawOutput]:
    if isinstance(result, str):
        return [RawOutput(url=result, b64_json=None)]
    if not isinstance(result, dict):
        return []
    sample = result.get("sample") or result.get("samples") or result.get("url")
    samples = sample if isinstance(sample, list) else [sample]
    return [RawOutput(url=item, b64_json=None) for item in samples if isinstance(item, str) and item]


def parse_poll(response: httpx.Response, *, task_id: str) -> ProviderResult | None:
    """The finished result, None while the task still runs; raises when it ended badly."""
    payload, trace_id = parse_json_success(response)
    if isinstance(payload, dict) and "status" not in payload and isinstance(payload.get("data"), dict):
        payload = payload["data"]
    if not isinstance(payload, dict):
        raise MalformedResponse(
            "the task poll answered with a body that is not a JSON object", trace_id=trace_id
        )
    status = str(payload.get("status") or "").strip().lower()
    details = next(
        (text for key in ("details", "error", "message") if (text := message_in(payload.get(key)))), ""
    )
    if status in _READY:
        outputs = _samples(payload.get("result"))
        if not outputs:
            raise PermanentProviderError(
                f"task {task_id} is ready but has no image we can read: {response.text[:2000]}",
                code="upstream_empty_result",
                trace_id=trace_id,
            )
        return ProviderResult(outputs=outputs, usage=None, upstream_task_id=task_id, trace_id=trace_id)
    if status in _MODERATED:
        raise ContentPolicyError(
            f"task {task_id}: {status} {details}".strip(), trace_id=trace_id
        )
    if status in _FAILED:
        raise PermanentProviderError(
            f"task {task_id} failed: {details}".strip(), code="upstream_task_failed", trace_id=trace_id
        )
    if status in _NOT_FOUND:
        raise PermanentProviderError(
            f"task {task_id} is unknown to the upstream", code="upstream_task_not_found", trace_id=trace_id
        )
    return None
