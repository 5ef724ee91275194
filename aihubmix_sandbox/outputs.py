"""The images a family answers with — inline base64 or a URL under `/files/` — and the endpoint serving those
URLs. A file URL carries everything needed to draw its image again, so the sandbox stores no files."""

import base64
import json
from typing import TYPE_CHECKING, Any

from aihubmix_sandbox.faults import FILE_FAULTS, fault_file_answer, fault_inline_image
from aihubmix_sandbox.render import format_for, image_render, image_render_base64, size_parse

if TYPE_CHECKING:
    from aihubmix_sandbox.server import SandboxHandler


def output_url(
    *, base: str, prompt: str, model: str, width: int, height: int, index: int, ext: str, fault: str | None
) -> str:
    token = {"p": prompt[:300], "m": model, "w": width, "h": height, "i": index, "f": fault}
    encoded = base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")
    return f"{base}/files/{encoded}.{ext}"


def output_items(
    *,
    base: str,
    prompt: str,
    model: str,
    size: Any,
    n: int,
    response_format: str,
    output_format: Any,
    fault: str | None,
) -> list[dict[str, str]]:
    """`n` answer items, `{"b64_json": …}` or `{"url": …}` as `response_format` asks."""
    width, height = size_parse(size)
    pillow_format, _content_type, ext = format_for(output_format)
    items = []
    for index in range(n):
        if response_format == "b64_json" and fault not in FILE_FAULTS:
            faulted = fault_inline_image(fault)
            encoded = base64.b64encode(faulted).decode() if faulted else image_render_base64(
                prompt=prompt, model=model, width=width, height=height, index=index, image_format=pillow_format
            )
            items.append({"b64_json": encoded})
        else:
            url = output_url(
                base=base, prompt=prompt, model=model, width=width, height=height, index=index, ext=ext,
                fault=fault,
            )
            items.append({"url": url})
    return items


def file_serve(http: "SandboxHandler", name: str) -> None:
    """GET /files/<token>.<ext>: the image the token describes, or what its fault serves instead."""
    http.state.count("files")
    token, _, ext = name.rpartition(".")
    try:
        spec = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        http.reply_error(404, "not_found", "no such file")
        return
    if fault_file_answer(http, spec.get("f")):
        return
    pillow_format, content_type, _ = format_for(ext)
    data = image_render(
        prompt=spec["p"], model=spec["m"], width=spec["w"], height=spec["h"], index=spec["i"],
        image_format=pillow_format,
    )
    http.reply(200, data, content_type, {"Cache-Control": "max-age=86400"})
