"""Unified predictions family: `POST /models/<vendor>/<model>/predictions` with `{"input": {...}}`.

Reference images go where each vendor's native API expects them; the catalog leaves them out of the body. The
vendors' other native spellings (Alibaba's sizes, Seedream's image count) are here too, as plain functions the
catalog calls while it builds the body.
"""

import base64
from typing import Any

import httpx

from generations.providers.base import (
    InputImage,
    ProviderCall,
    ProviderResult,
    UpstreamRequest,
    parse_success,
)


def _data_url(image: InputImage) -> str:
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def _raw_base64(image: InputImage) -> str:
    return base64.b64encode(image.data).decode("ascii")


def _attach_images(vendor: str, fields: dict, images: list[InputImage]) -> None:
    if vendor == "bfl":
        # The page's reference-image field is one `image` string; BFL takes plain base64 there.
        fields["image"] = _raw_base64(images[0])
    elif vendor == "qianfan":
        fields["refer_image"] = _data_url(images[0])
    elif vendor == "doubao":
        fields["image"] = [_data_url(image) for image in images]
    else:
        # Alibaba's native interface ("images string[] 图片 URL 或 base64 数组(1-3 张)") and the rest.
        fields["images"] = [_data_url(image) for image in images]


def size_value(vendor: str, size: str) -> str:
    """A size as the vendor's native interface writes it: Alibaba's as `W*H` ("格式为 宽*高 或缩写 1K/2K/4K"),
    the others as given (`WxH`, a preset such as `2K` or `16:9`)."""
    return size.replace("x", "*") if vendor == "bailian" else size


def sequential_count_fields(n: int) -> dict[str, Any]:
    """How Seedream's group mode is told the number of images: it has no count field, only a switch and a cap."""
    fields: dict[str, Any] = {"sequential_image_generation": "auto" if n > 1 else "disabled"}
    if n > 1:
        fields["sequential_image_generation_options"] = {"max_images": n}
    return fields


def predictions_path(model_id: str) -> str:
    return f"/models/{model_id}/predictions"


def build_request(call: ProviderCall) -> UpstreamRequest:
    body = {**call.body, "input": dict(call.body.get("input", {}))}
    if call.images:
        _attach_images(call.model_id.split("/", 1)[0], body["input"], call.images)
    return UpstreamRequest(method="POST", path=predictions_path(call.model_id), json=body)


def parse_response(response: httpx.Response) -> ProviderResult:
    return parse_success(response)
