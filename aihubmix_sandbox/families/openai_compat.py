"""The OpenAI-compatible family: POST /v1/images/generations (JSON) and /v1/images/edits (multipart)."""

import json
import time
from typing import TYPE_CHECKING, Any

from aihubmix_sandbox.families.predictions import gpt_image_usage
from aihubmix_sandbox.faults import fault_answer
from aihubmix_sandbox.multipart import multipart_parse
from aihubmix_sandbox.outputs import output_items

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
    http.state.latency_wait()
    # GPT Image models always answer base64 and report token usage, whatever response_format says.
    is_gpt_image = model.startswith("gpt-image")
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
