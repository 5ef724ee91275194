"""AIHubMix's public model list (`GET <host>/api/v1/models?type=image_generation`, no key): what the upstream says
it serves, read for catalog sync. `{"data": [{"model_id", "model_name", "types", "pricing", ...}]}`; `types` is a
comma-separated string (a list is accepted too). Entries are read tolerantly: one without a usable `model_id` is
skipped, unknown fields are ignored, `pricing` is kept as given for staff to read."""

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

IMAGE_TYPE = "image_generation"


class ModelListUnavailable(Exception):
    """The list could not be read; the message names the URL and what went wrong."""


@dataclass(frozen=True)
class UpstreamModel:
    model_id: str
    model_name: str = ""
    types: tuple[str, ...] = ()
    pricing: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def model_list_url(base_url: str) -> str:
    """The list lives on the API base URL's host, outside `/v1`."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}/api/v1/models?type={IMAGE_TYPE}"


def _types(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(item.strip() for item in items if isinstance(item, str) and item.strip())


def model_list_parse(payload: Any) -> list[UpstreamModel]:
    """The image models of a list answer; ValueError when the answer is not a list of models at all."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ValueError('the answer has no "data" list')
    models = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("model_id"), str) or not item["model_id"].strip():
            continue
        types = _types(item.get("types"))
        # The query asks for image models only; an entry typed otherwise is not one, whatever the server sent.
        if types and IMAGE_TYPE not in types:
            continue
        name, pricing, description = item.get("model_name"), item.get("pricing"), item.get("desc")
        models.append(
            UpstreamModel(
                model_id=item["model_id"].strip(),
                model_name=name.strip() if isinstance(name, str) else "",
                types=types,
                pricing=pricing if isinstance(pricing, dict) else {},
                description=description.strip() if isinstance(description, str) else "",
            )
        )
    return models


def model_list_fetch(*, url: str, connect_timeout_seconds: float = 10.0, read_timeout_seconds: float = 30.0) -> list[
    UpstreamModel
]:
    """One GET of the list; ModelListUnavailable (naming the URL) for a network error, a non-2xx answer or a body
    that is not the list."""
    timeout = httpx.Timeout(connect=connect_timeout_seconds, read=read_timeout_seconds, write=10.0, pool=10.0)
    try:
        response = httpx.get(url, timeout=timeout, headers={"Accept": "application/json"}, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise ModelListUnavailable(f"Could not read AIHubMix's model list at {url}: {exc!r}") from exc
    if not response.is_success:
        raise ModelListUnavailable(
            f"AIHubMix's model list at {url} answered HTTP {response.status_code}: {response.text[:200]!r}"
        )
    try:
        return model_list_parse(response.json())
    except ValueError as exc:
        raise ModelListUnavailable(f"AIHubMix's model list at {url} is not a model list: {exc}") from exc
