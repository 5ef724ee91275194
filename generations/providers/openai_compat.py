"""OpenAI-compatible family: `POST /images/generations` (JSON) and `POST /images/edits` (multipart)."""

import json
from typing import Any

import httpx

from generations.providers.base import (
    ProviderCall,
    ProviderResult,
    UpstreamRequest,
    parse_success,
)


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def build_request(call: ProviderCall) -> UpstreamRequest:
    if call.operation == "generate":
        return UpstreamRequest(method="POST", path="/images/generations", json=call.body)
    # OpenAI's own SDK names several images `image[]`; a single one is plain `image`.
    field_name = "image[]" if len(call.images) > 1 else "image"
    files = [(field_name, (image.filename, image.data, image.content_type)) for image in call.images]
    if call.mask is not None:
        files.append(("mask", (call.mask.filename, call.mask.data, call.mask.content_type)))
    data = {key: _form_value(value) for key, value in call.body.items() if value is not None}
    return UpstreamRequest(method="POST", path="/images/edits", data=data, files=files)


def parse_response(response: httpx.Response) -> ProviderResult:
    return parse_success(response)
