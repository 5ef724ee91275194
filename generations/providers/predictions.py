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
    parse_json_success,
    result_from_payload,
)


def _data_url(image: InputImage) -> str:
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def _raw_base64(image: InputImage) -> str:
    return base64.b64encode(image.data).decode("ascii")


def _attach_images(vendor: str, fields: dict, images: list[InputImage]) -> None:
    if vendor == "bfl":
        # Black Forest Labs numbers extra references: input_image, input_image_2, input_image_3, ...
        for index, image in enumerate(images, start=1):
            fields["input_image" if index == 1 else f"input_image_{index}"] = _raw_base64(image)
    elif vendor == "qianfan":
        fields["refer_image"] = _data_url(images[0])
    elif vendor == "doubao":
        fields["image"] = [_data_url(image) for image in images]
    else:
        fields["images"] = [_data_url(image) for image in images]


def predictions_path(model_id: str) -> str:
    return f"/models/{model_id}/predictions"


def build_request(call: ProviderCall) -> UpstreamRequest:
    body = {**call.body, "input": dict(call.body.get("input", {}))}
    if call.images:
        _attach_images(call.model_id.split("/", 1)[0], body["input"], call.images)
    return UpstreamRequest(method="POST", path=predictions_path(call.model_id), json=body)


def parse_response(response: httpx.Response) -> ProviderResult:
    payload, trace_id = parse_json_success(response)
    return result_from_payload(payload, trace_id=trace_id)
