"""The predictions family: POST /v1/models/<vendor>/<model>/predictions with `{"input": {...}}`. FLUX task models
share the route and are handed to the async-task family."""

import json
import time
from typing import TYPE_CHECKING, Any

from aihubmix_sandbox.families.tasks import ASYNC_MODELS, task_submit
from aihubmix_sandbox.faults import fault_answer
from aihubmix_sandbox.outputs import output_items
from aihubmix_sandbox.render import format_for

if TYPE_CHECKING:
    from aihubmix_sandbox.server import SandboxHandler

# Synchronous BFL models answer OpenAI-style: one base64 image, JPEG unless told otherwise (NOTES.md).
_OPENAI_STYLE_MODELS = frozenset({"FLUX-1.1-pro"})
# Seedream 5.0 lite takes 2K, 3K or WxH; 1K and 4K are refused (NOTES.md, "What the upstream serves now").
_SEEDREAM_5_REFUSED_SIZES = frozenset({"1k", "4k"})


def predictions(http: "SandboxHandler", model_path: str, body: bytes) -> None:
    vendor, _, model = model_path.partition("/")
    try:
        fields = json.loads(body or b"{}").get("input") or {}
    except (ValueError, AttributeError):
        http.reply_error(400, "invalid_json", "the body must be a JSON object with `input`")
        return
    is_async = model in ASYNC_MODELS
    family = "async_task" if is_async else "predictions"
    http.state.count("predictions", f"family:{family}", f"model:{model_path}")
    prompt = str(fields.get("prompt") or "")
    if not prompt:
        http.reply_error(400, "prompt_missing", "prompt is required")
        return
    fault = http.state.faults.active(prompt)
    if fault_answer(http, fault, is_async=is_async):
        return
    size = fields.get("size") or fields.get("aspectRatio") or fields.get("aspect_ratio")
    if model.startswith("doubao-seedream-5") and str(size or "").lower() in _SEEDREAM_5_REFUSED_SIZES:
        http.reply_error(400, "size_not_supported", f"size {size} is not supported by {model}: use 2K, 3K or WxH")
        return
    if is_async:
        task_submit(
            http, model_path=model_path, prompt=prompt, size=size, output_format=fields.get("output_format"),
            fault=fault,
        )
        return
    http.state.latency_wait()
    if vendor == "openai" and model.startswith("gpt-image"):
        http.reply_json(200, _gpt_image_answer(http, prompt, model, size, _image_count(vendor, fields), fields, fault))
        return
    openai_style = model in _OPENAI_STYLE_MODELS
    outputs = output_items(
        base=http.public_base(),
        prompt=prompt,
        model=model,
        size=size,
        n=1 if openai_style else _image_count(vendor, fields),
        response_format="b64_json" if openai_style else str(fields.get("response_format") or "url"),
        output_format=fields.get("output_format") or ("jpeg" if openai_style else None),
        fault=fault,
    )
    if openai_style:
        http.reply_json(200, {"created": int(time.time()), "data": outputs})
    else:
        http.reply_json(200, {"output": outputs})


def _gpt_image_answer(
    http: "SandboxHandler", prompt: str, model: str, size: Any, n: int, fields: dict[str, Any], fault: str | None
) -> dict[str, Any]:
    """Newer OpenAI models answer predictions with an object: base64 images with their type, plus URLs (empty
    here) and token usage (NOTES.md, "What has moved upstream")."""
    items = output_items(
        base=http.public_base(),
        prompt=prompt,
        model=model,
        size=None if size == "auto" else size,
        n=n,
        response_format="b64_json",
        output_format=fields.get("output_format"),
        fault=fault,
    )
    _pillow, content_type, _ext = format_for(fields.get("output_format"))
    # gpt-image-2 names the type without `image/` ("png"), as a recorded call shows; older models the full type.
    mime_type = content_type.removeprefix("image/") if model == "gpt-image-2" else content_type
    return {
        "output": {
            "b64_json": [{"bytesBase64": item["b64_json"], "mimeType": mime_type} for item in items if "b64_json" in item],
            "urls": [item["url"] for item in items if "url" in item],
        },
        "usage": gpt_image_usage(model, prompt, n=n),
    }


def gpt_image_usage(model: str, prompt: str, *, n: int, input_images: int = 0) -> dict[str, Any]:
    """OpenAI's token usage; gpt-image-2 splits output tokens by kind too (NOTES.md)."""
    text = max(1, len(prompt) // 4)
    image_in = 1024 * input_images
    image_out = 4160 * n
    usage: dict[str, Any] = {
        "input_tokens": text + image_in,
        "output_tokens": image_out,
        "total_tokens": text + image_in + image_out,
        "input_tokens_details": {"text_tokens": text, "image_tokens": image_in},
    }
    if model == "gpt-image-2":
        usage["output_tokens_details"] = {"image_tokens": image_out, "text_tokens": 0}
    return usage


def _image_count(vendor: str, fields: dict[str, Any]) -> int:
    """How many images the upstream makes: Imagen four unless told, Seedream's group mode up to its maximum."""
    if vendor == "google":
        return int(fields.get("numberOfImages") or fields.get("sampleCount") or 4)
    if vendor == "doubao":
        if fields.get("sequential_image_generation") != "auto":
            return 1
        return int((fields.get("sequential_image_generation_options") or {}).get("max_images", 15))
    return int(fields.get("n") or fields.get("num_images") or 1)
