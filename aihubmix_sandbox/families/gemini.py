"""The Gemini-native route: POST /gemini/v1beta/models/<model>:generateContent with `x-goog-api-key`, Google's
`contents` / `generationConfig` body, answered as Gemini answers (NOTES.md, "What the upstream serves now"): the
image as base64 JPEG in a part's `inlineData` with a very large `thoughtSignature` beside it, a text part, and
`usageMetadata` with per-modality token counts.

Safety and refusals answer 200 as Gemini does, chosen by a marker in the prompt: `[fault:moderated]` (a candidate
stopped with `finishReason: IMAGE_SAFETY`, no image), `[fault:prompt-blocked]` (`promptFeedback.blockReason`, no
candidate) and `[fault:no-image]` (the model answers text only). The other markers act as on every route.
"""

import base64
import hashlib
import io
import json
import uuid
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from PIL import Image

from aihubmix_sandbox.faults import fault_answer, fault_inline_image
from aihubmix_sandbox.render import image_render

if TYPE_CHECKING:
    from aihubmix_sandbox.server import SandboxHandler

GEMINI_PREFIX = "/gemini/v1beta/models/"
GEMINI_SUFFIX = ":generateContent"
# Gemini's own 1K sizes per aspect ratio; 2K and 4K are twice and four times as large.
_SIZES_1K = {
    "1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200), "4:3": (1200, 896),
    "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376), "16:9": (1376, 768), "21:9": (1584, 672),
}
_SCALE = {"1K": 1, "2K": 2, "4K": 4}
_GEMINI_FAULTS = frozenset({"moderated", "prompt-blocked", "no-image"})
IMAGE_TOKENS = {"1K": 1120, "2K": 1120, "4K": 2000}
INPUT_IMAGE_TOKENS = 560
THOUGHT_TOKENS = 180
THOUGHT_SIGNATURE_BYTES = 192 * 1024


@lru_cache(maxsize=1)
def thought_signature() -> str:
    """Gemini's opaque `thoughtSignature`: large, meaningless to us, to be ignored."""
    chunks, seed = [], b"sandbox"
    while sum(map(len, chunks)) < THOUGHT_SIGNATURE_BYTES:
        seed = hashlib.sha256(seed).digest()
        chunks.append(seed)
    return base64.b64encode(b"".join(chunks)[:THOUGHT_SIGNATURE_BYTES]).decode()


def _dimensions(ratio: str | None, resolution: str, reference: bytes | None) -> tuple[int, int]:
    scale = _SCALE.get(resolution.upper(), 1)
    if ratio in _SIZES_1K:
        width, height = _SIZES_1K[ratio]
    elif ratio:
        across, down = (int(side) for side in ratio.split(":"))
        width, height = _area_fit(across / down)
    elif reference is not None:
        # No ratio asked for an edit: Gemini keeps the input image's.
        with Image.open(io.BytesIO(reference)) as image:
            width, height = _area_fit(image.width / image.height)
    else:
        width, height = _SIZES_1K["1:1"]
    return width * scale, height * scale


def _area_fit(aspect: float) -> tuple[int, int]:
    """About a megapixel at `aspect`, sides multiples of 16."""
    width = round((1024 * 1024 * aspect) ** 0.5 / 16) * 16
    return max(width, 16), max(round(width / aspect / 16) * 16, 16)


def _usage(prompt: str, images: int, image_tokens: int, *, thinking: bool, text_tokens: int) -> dict[str, Any]:
    prompt_text = max(1, len(prompt) // 4)
    prompt_details = [{"modality": "TEXT", "tokenCount": prompt_text}]
    if images:
        prompt_details.append({"modality": "IMAGE", "tokenCount": INPUT_IMAGE_TOKENS * images})
    candidate_details = [{"modality": "TEXT", "tokenCount": text_tokens}] if text_tokens else []
    if image_tokens:
        candidate_details.append({"modality": "IMAGE", "tokenCount": image_tokens})
    prompt_total = prompt_text + INPUT_IMAGE_TOKENS * images
    candidates = text_tokens + image_tokens
    thoughts = THOUGHT_TOKENS if thinking else 0
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_total,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt_total + candidates + thoughts,
        "promptTokensDetails": prompt_details,
    }
    if candidate_details:
        usage["candidatesTokensDetails"] = candidate_details
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def generate_content(http: "SandboxHandler", model: str, body: bytes) -> None:
    try:
        payload = json.loads(body or b"{}")
        parts = [part for content in payload.get("contents") or [] for part in content.get("parts") or []]
    except (ValueError, AttributeError, TypeError):
        http.reply_json(400, {"error": {"code": 400, "message": "Invalid JSON payload", "status": "INVALID_ARGUMENT"}})
        return
    http.state.count("gemini", "family:gemini", f"model:{model}")
    prompt = " ".join(part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str))
    references = [
        base64.b64decode(part["inlineData"]["data"])
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("inlineData"), dict)
    ]
    if not prompt.strip():
        http.reply_json(
            400, {"error": {"code": 400, "message": "contents must contain text", "status": "INVALID_ARGUMENT"}}
        )
        return
    fault = http.state.faults.active(prompt)
    thinking = "pro" in model
    if fault in _GEMINI_FAULTS:
        http.state.count(f"fault:{fault}")
        http.reply_json(200, _refusal(fault, model, _usage(prompt, len(references), 0, thinking=thinking,
                                                            text_tokens=24 if fault == "no-image" else 0)))
        return
    if fault_answer(http, fault):
        return
    http.state.latency_wait()
    config = (payload.get("generationConfig") or {}).get("imageConfig") or {}
    resolution = str(config.get("imageSize") or "1K")
    width, height = _dimensions(config.get("aspectRatio"), resolution, references[0] if references else None)
    image = fault_inline_image(fault) or image_render(
        prompt=prompt, model=model, width=width, height=height, index=0, image_format="JPEG"
    )
    answer = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Here is the image you asked for."},
                        {
                            "inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(image).decode()},
                            "thoughtSignature": thought_signature(),
                        },
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": _usage(
            prompt, len(references), IMAGE_TOKENS.get(resolution.upper(), 1120), thinking=thinking, text_tokens=9
        ),
        "modelVersion": model,
        "responseId": uuid.uuid4().hex[:22],
    }
    http.reply_json(200, answer)


def _refusal(fault: str, model: str, usage: dict[str, Any]) -> dict[str, Any]:
    common = {"usageMetadata": usage, "modelVersion": model, "responseId": uuid.uuid4().hex[:22]}
    if fault == "prompt-blocked":
        return {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, **common}
    if fault == "moderated":
        message = "Unable to show the generated image: it was filtered out by the safety system (sandbox)."
        return {"candidates": [{"finishReason": "IMAGE_SAFETY", "finishMessage": message, "index": 0}], **common}
    text = "I can describe that scene in words, but I will not draw it (sandbox)."
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text, "thoughtSignature": thought_signature()}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        **common,
    }
