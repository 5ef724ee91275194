"""The OpenAI-compatible family: POST /v1/images/generations (JSON) and /v1/images/edits (multipart).

GPT image models also speak OpenAI's streaming mode (`stream: true`, `partial_images` 0-3; form fields `"true"` and
`"2"` on edits): `text/event-stream` with `image_generation.partial_image` (edits `image_edit.partial_image`) events
spaced over the latency — real PNGs at a quarter of the size, as a preview may be — then `*.completed` with the
image and its usage (NOTES.md, "What our OpenAI-compatible clients expect").
"""

import base64
import json
import time
from typing import TYPE_CHECKING, Any

from aihubmix_sandbox.families.predictions import gpt_image_usage
from aihubmix_sandbox.faults import fault_answer
from aihubmix_sandbox.multipart import multipart_parse
from aihubmix_sandbox.outputs import output_items
from aihubmix_sandbox.render import image_render, size_parse

if TYPE_CHECKING:
    from aihubmix_sandbox.server import SandboxHandler



def images_generate(http: "SandboxHandler", body: bytes) -> None:
    try:
        fields = json.loads(body or b"{}")
    except ValueError:
        http.reply_error(400, "invalid_json", "the body is not JSON")
        return
    _answer(http, fields, "images.generations", input_images=0)


def images_edit(http: "SandboxHandler", body: bytes) -> None:
    fields, files = multipart_parse(http.headers.get("Content-Type", ""), body)
    if not any(name in ("image", "image[]") for name in files):
        http.state.count("images.edits")
        http.reply_error(400, "image_missing", "at least one image file is required")
        return
    _answer(http, fields, "images.edits", input_images=sum(name in ("image", "image[]") for name in files))


def _answer(http: "SandboxHandler", fields: dict[str, Any], endpoint: str, *, input_images: int) -> None:
    model = str(fields.get("model") or "")
    prompt = str(fields.get("prompt") or "")
    http.state.count(endpoint, "family:openai_compat", f"model:{model}")
    if not prompt:
        http.reply_error(400, "prompt_missing", "prompt is required")
        return
    fault = http.state.faults.active(prompt)
    if fault_answer(http, fault):
        return
    # GPT Image models always answer base64 and report token usage, whatever response_format says.
    is_gpt_image = model.startswith("gpt-image")
    if is_gpt_image and str(fields.get("stream")).lower() == "true":
        _stream(http, fields, endpoint, model=model, prompt=prompt, input_images=input_images, fault=fault)
        return
    http.state.latency_wait()
    outputs = output_items(
        base=http.public_base(),
        prompt=prompt,
        model=model,
        size=fields.get("size"),
        n=int(fields.get("n") or 1),
        response_format="b64_json" if is_gpt_image else str(fields.get("response_format") or "url"),
        output_format=fields.get("output_format"),
        fault=fault,
    )
    payload: dict[str, Any] = {"created": int(time.time()), "data": outputs}
    if is_gpt_image:
        payload["usage"] = gpt_image_usage(model, prompt, n=len(outputs), input_images=input_images)
    http.reply_json(200, payload)


def _partial_count(value: Any) -> int:
    try:
        return max(0, min(3, int(value or 0)))
    except (TypeError, ValueError):
        return 0


def _stream(
    http: "SandboxHandler", fields: dict[str, Any], endpoint: str, *, model: str, prompt: str, input_images: int,
    fault: str | None,
) -> None:
    """OpenAI's streaming answer, chunked: each partial after its share of the latency, then the completed event."""
    http.state.count(f"{endpoint}.stream")
    prefix = "image_edit" if endpoint == "images.edits" else "image_generation"
    partials = _partial_count(fields.get("partial_images"))
    size = str(fields.get("size") or "1024x1024")
    width, height = size_parse(size)
    common = {
        "created_at": int(time.time()), "size": size, "quality": str(fields.get("quality") or "auto"),
        "background": str(fields.get("background") or "auto"),
        "output_format": str(fields.get("output_format") or "png"),
    }
    http.send_response(200)
    http.send_header("Content-Type", "text/event-stream")
    http.send_header("Cache-Control", "no-cache")
    http.send_header("Transfer-Encoding", "chunked")
    http.end_headers()

    def event(kind: str, data: dict[str, Any]) -> None:
        chunk = f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()
        http.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        http.wfile.flush()

    step = http.state.latency / (partials + 1)
    for index in range(partials):
        if step > 0:
            http.state.stopping.wait(step)
        preview = image_render(
            prompt=f"{prompt} (partial {index})", model=model, width=max(16, width // 4), height=max(16, height // 4),
            index=0,
        )
        event(f"{prefix}.partial_image",
              {"b64_json": base64.b64encode(preview).decode(), "partial_image_index": index, **common})
    if step > 0:
        http.state.stopping.wait(step)
    [item] = output_items(
        base=http.public_base(), prompt=prompt, model=model, size=size, n=1, response_format="b64_json",
        output_format=fields.get("output_format"), fault=fault,
    )
    event(f"{prefix}.completed", {
        "b64_json": item["b64_json"], **common,
        "usage": gpt_image_usage(model, prompt, n=1, input_images=input_images),
    })
    http.wfile.write(b"0\r\n\r\n")
    http.wfile.flush()
