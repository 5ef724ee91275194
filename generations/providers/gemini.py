"""Gemini family: Google's native `generateContent`, as AIHubMix relays it for the Gemini image models (NOTES.md,
"What the upstream serves now"; AIHubMix does not serve them on the images routes).

`POST <gemini base>/v1beta/models/<model>:generateContent` with `x-goog-api-key: <key>` (not Bearer). The gemini
base is the base URL's host with `/gemini` (`https://aihubmix.com/v1` → `https://aihubmix.com/gemini`, where
Google's own SDKs point `base_url`) unless configured. The body:

    {"contents": [{"role": "user", "parts": [{"text": "<prompt>"}, {"inlineData": {"mimeType", "data"}}, ...]}],
     "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                          "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"}}}

Input images (edits) are `inlineData` parts after the prompt. The answer has the image as base64 in a part's
`inlineData`; text parts and a very large `thoughtSignature` beside it, and interim images marked
`"thought": true`, are ignored. `usageMetadata` is kept, as the OpenAI-shaped token usage the other families
report (`usage_from_metadata`). A safety block — `promptFeedback.blockReason`, or a candidate stopped for a safety
reason without an image — is a content-policy failure; any other answer without an image fails as
`upstream_no_image` with the answer kept for staff (it was delivered and charged: never resent).

Our `size` for these models (the catalog lists the presets): `1K`, `2K` or `4K` — the resolution, the aspect
ratio left to the model (square for a generation, the input image's for an edit); a ratio such as `16:9` — that
ratio at 1K; or both, `16:9-2K`. The resolution is always sent, so what is billed is what was asked for.
"""

import base64
import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from generations.providers.base import (
    ContentPolicyError,
    MalformedResponse,
    ProviderCall,
    ProviderResult,
    RawOutput,
    UpstreamRequest,
    message_in,
    parse_json_success,
)

RESOLUTIONS = ("1K", "2K", "4K")
_SIZE = re.compile(r"^(?:(?P<ratio>\d{1,2}:\d{1,2})(?:-(?P<with>[124]K))?|(?P<alone>[124]K))$", re.IGNORECASE)
# Finish reasons that mean a safety system stopped the candidate (Gemini API `FinishReason`).
_SAFETY_REASONS = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
    }
)
_TEXT_EXCERPT_CHARS = 300


def gemini_base_url(base_url: str) -> str:
    """Where AIHubMix serves Gemini's native API: the base URL's host, path `/gemini`."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}/gemini"


def image_config_from_size(size: str) -> dict[str, str]:
    """`imageConfig` for one of our Gemini sizes (module docstring); ValueError for anything else."""
    match = _SIZE.match(size.strip()) if isinstance(size, str) else None
    if match is None:
        raise ValueError(f"{size!r} is not a Gemini size: use 1K, 2K, 4K, a ratio such as 16:9, or 16:9-2K.")
    if match["ratio"]:
        return {"aspectRatio": match["ratio"], "imageSize": (match["with"] or "1K").upper()}
    return {"imageSize": match["alone"].upper()}


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        both_objects = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_objects else value
    return merged


def generate_content_body(fields: dict[str, Any]) -> dict[str, Any]:
    """The upstream body (without input images) from the catalog's validated fields: `prompt`, our `size`, and
    any other field at its path in the body (a catalog extra or fixed value such as
    `{"generationConfig": {"temperature": 1}}`, merged over the defaults)."""
    rest = dict(fields)
    prompt = rest.pop("prompt")
    size = rest.pop("size", None)
    generation_config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if size:
        generation_config["imageConfig"] = image_config_from_size(size)
    body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}], "generationConfig": generation_config}
    return _merged(body, rest)


def generate_content_path(model_id: str) -> str:
    return f"/v1beta/models/{model_id.split('/', 1)[-1]}:generateContent"


def build_request(call: ProviderCall) -> UpstreamRequest:
    first, *others = call.body["contents"]
    images = [
        {"inlineData": {"mimeType": image.content_type, "data": base64.b64encode(image.data).decode("ascii")}}
        for image in call.images
    ]
    body = {**call.body, "contents": [{**first, "parts": [*first["parts"], *images]}, *others]}
    return UpstreamRequest(method="POST", path=generate_content_path(call.model_id), json=body, endpoint="gemini")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _by_modality(details: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in details if isinstance(details, list) else []:
        if isinstance(item, dict) and isinstance(item.get("modality"), str) and _count(item.get("tokenCount")):
            key = f"{item['modality'].lower()}_tokens"
            counts[key] = counts.get(key, 0) + item["tokenCount"]
    return counts


def usage_from_metadata(metadata: Any) -> dict[str, Any] | None:
    """Gemini's `usageMetadata` as OpenAI-shaped usage, so every family keeps one shape on the generation:
    input = `promptTokenCount`, output = `candidatesTokenCount` + `thoughtsTokenCount` (thinking is billed as
    output), per-modality details (`image_tokens`, `text_tokens`) and the thinking as `reasoning_tokens`."""
    if not isinstance(metadata, dict):
        return None
    prompt = _count(metadata.get("promptTokenCount"))
    candidates = _count(metadata.get("candidatesTokenCount"))
    thoughts = _count(metadata.get("thoughtsTokenCount"))
    usage: dict[str, Any] = {
        "input_tokens": prompt,
        "output_tokens": candidates + thoughts,
        "total_tokens": _count(metadata.get("totalTokenCount")) or prompt + candidates + thoughts,
    }
    if input_details := _by_modality(metadata.get("promptTokensDetails")):
        usage["input_tokens_details"] = input_details
    output_details = _by_modality(metadata.get("candidatesTokensDetails"))
    if thoughts:
        output_details["reasoning_tokens"] = thoughts
    if output_details:
        usage["output_tokens_details"] = output_details
    return usage


def _parts(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [part for part in parts if isinstance(part, dict)] if isinstance(parts, list) else []


def _image(part: dict[str, Any]) -> RawOutput | None:
    if part.get("thought") is True:
        return None  # an interim "thinking" image, not the answer
    inline = part.get("inlineData") or part.get("inline_data")
    if not isinstance(inline, dict):
        return None
    mime = str(inline.get("mimeType") or inline.get("mime_type") or "image/")
    data = inline.get("data")
    if not mime.startswith("image/") or not isinstance(data, str) or not data:
        return None
    return RawOutput(url=None, b64_json=data)


def _for_staff(payload: Any) -> str:
    """The answer without its bulk (image data, thought signatures), so what staff need fits the kept excerpt."""

    def slim(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: f"<{len(item)} chars>" if key in ("data", "thoughtSignature") and isinstance(item, str)
                else slim(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [slim(item) for item in value]
        return value

    return json.dumps(slim(payload), ensure_ascii=False)


def _chunks_joined(chunks: list[Any]) -> dict[str, Any]:
    """`:streamGenerateContent` answers a JSON array of partial answers: their candidates' parts together, the
    last usage and feedback."""
    joined: dict[str, Any] = {"candidates": []}
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        for candidate in chunk.get("candidates") or []:
            if isinstance(candidate, dict):
                joined["candidates"].append(candidate)
        for key in ("usageMetadata", "promptFeedback"):
            if chunk.get(key) is not None:
                joined[key] = chunk[key]
    return joined


def parse_response(response: httpx.Response) -> ProviderResult:
    payload, trace_id = parse_json_success(response)
    if isinstance(payload, list):
        payload = _chunks_joined(payload)
    if not isinstance(payload, dict):
        raise MalformedResponse(
            "the upstream answered 2xx with a body that is not a JSON object", trace_id=trace_id, body=response.text
        )
    feedback = payload.get("promptFeedback")
    blocked = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if blocked:
        raise ContentPolicyError(
            f"The upstream's safety filter blocked the prompt ({blocked}).", status=response.status_code,
            trace_id=trace_id,
        )
    candidates = [item for item in payload.get("candidates") or [] if isinstance(item, dict)]
    outputs = [output for candidate in candidates for part in _parts(candidate) if (output := _image(part))]
    if outputs:
        return ProviderResult(
            outputs=outputs, usage=usage_from_metadata(payload.get("usageMetadata")), upstream_task_id=None,
            trace_id=trace_id,
        )
    reasons = [str(candidate.get("finishReason") or "") for candidate in candidates]
    details = next((text for c in candidates if (text := message_in(c.get("finishMessage")))), "")
    safety = next((reason for reason in reasons if reason.upper() in _SAFETY_REASONS), None)
    if safety:
        message = f"The upstream's safety filter stopped the image ({safety})" + (f": {details}" if details else ".")
        raise ContentPolicyError(message, status=response.status_code, trace_id=trace_id)
    if not candidates:
        raise MalformedResponse(
            "the upstream's answer has no candidates", trace_id=trace_id, body=_for_staff(payload)
        )
    said = " ".join(
        part["text"] for candidate in candidates for part in _parts(candidate)
        if isinstance(part.get("text"), str) and part.get("thought") is not True
    ).strip()
    reason = next((reason for reason in reasons if reason), "none")
    message = f"The upstream answered without an image (finish reason {reason})"
    if said or details:
        message += f": {(said or details)[:_TEXT_EXCERPT_CHARS]}"
    raise MalformedResponse(message, code="upstream_no_image", trace_id=trace_id, body=_for_staff(payload))
