"""Unified predictions family: `POST /models/<vendor>/<model>/predictions` with `{"input": {...}}`.

Reference images go where each vendor's native API expects them; the catalog leaves them out of the body.
"""

import base64

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


def predictions_path(model_id: str) -> str:
    return f"/models/{model_id}/predictions"


def build_request(call: ProviderCall) -> UpstreamRequest:
    body = {**call.body, "input": dict(call.body.get("input", {}))}
    if call.images:
        _attach_images(call.model_id.split("/", 1)[0], body["input"], call.images)
    return UpstreamRequest(method="POST", path=predictions_path(call.model_id), json=body)


def parse_response(response: httpx.Response) -> ProviderResult:
    return parse_success(response)
