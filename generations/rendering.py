"""A generation as `GET /v1/generations/{id}` shows it, and as its webhook events carry it.

One rendering, below both the API (`api/serializers.py` declares the schema and renders through this) and the
services (`services/events.py` publishes it), so an API body and a webhook payload cannot drift apart and the
forwarder renders payloads without loading DRF.

Written out instead of DRF's loop over 29 field objects (an attribute lookup and a conversion each), which was about
a tenth of a submit's CPU. `tests/generations/test_serializers.py` pins the result to DRF's own rendering of the
serializer's declared fields, byte for byte and key for key.
"""

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urljoin

from django.conf import settings
from django.utils import timezone

from billing.money import micros_to_usd
from generations.models import Generation, GenerationImage, GenerationInputImage
from generations.selectors import image_is_serveable
from generations.storage import signed_download_url

# Makes a path absolute: the API passes its request's `build_absolute_uri`; without one (a webhook payload, rendered
# by a worker) the host is PUBLIC_BASE_URL.
AbsoluteUrl = Callable[[str], str]


def generation_render(
    generation: Generation, *, absolute_url: AbsoluteUrl | None = None, images: Iterable[GenerationImage] | None = None
) -> dict[str, Any]:
    """The body. `images`: the generation's images when the caller holds them already (just written); otherwise
    `generation.images` is read (prefetched by the API's querysets)."""
    return {
        "id": generation.public_id,
        "object": "generation",
        "status": generation.status,
        "model": generation.model_id,
        "requested_model": generation.requested_model_id or None,
        "operation": generation.operation,
        "prompt": generation.prompt,
        "negative_prompt": generation.negative_prompt,
        "n": generation.n,
        "size": generation.size,
        "quality": generation.quality,
        "seed": generation.seed,
        "params": generation.params,
        "api_key": api_key_render(generation),
        "cancel_requested": generation.cancel_requested,
        "deadline_at": _datetime(generation.deadline_at),
        "attempts": generation.attempts,
        "error": error_render(generation),
        "images": [
            image_render(image, absolute_url=absolute_url)
            for image in (generation.images.all() if images is None else images)
        ],
        "input_images": _input_images(generation),
        "images_returned": generation.images_returned,
        "unit_price_usd": micros_to_usd(generation.unit_price_micros),
        "estimated_usd": micros_to_usd(generation.estimate_micros),
        "charged_usd": charged_usd_render(generation),
        "usage": generation.usage,
        "webhook": generation.webhook_url or None,
        "webhook_events_filter": _strings(generation.webhook_events_filter),
        "created_at": _datetime(generation.created_at),
        "started_at": _datetime(generation.started_at),
        "finished_at": _datetime(generation.finished_at),
        "files_deleted_at": _datetime(generation.files_deleted_at),
    }


def image_render(image: GenerationImage, *, absolute_url: AbsoluteUrl | None = None) -> dict[str, Any]:
    return {
        "index": image.index,
        "url": image_url_render(image, absolute_url=absolute_url),
        "content_type": image.content_type,
        "width": image.width,
        "height": image.height,
        "bytes": image.byte_size,
        "sha256": image.sha256,
        "review_status": image.review_status,
        "revised_prompt": image.revised_prompt,
    }


def input_image_render(image: GenerationInputImage) -> dict[str, Any]:
    return {
        "index": image.index,
        "role": image.role,
        "content_type": image.content_type,
        "width": image.width,
        "height": image.height,
        "bytes": image.byte_size,
        "sha256": image.sha256,
    }


def _input_images(generation: Generation) -> list[dict[str, Any]]:
    # A generation from text has none (a mask alone is refused): no query for it, as a submit's answer is rendered
    # here too. Lists prefetch an edit's (generations.selectors.generation_list); one generation reads them here.
    if generation.operation == "generate":
        return []
    return [input_image_render(image) for image in generation.input_images.all()]


def image_url_render(image: GenerationImage, *, absolute_url: AbsoluteUrl | None = None) -> str | None:
    """A short-lived signed URL; None while withheld, once rejected, or after the files were deleted."""
    if not image_is_serveable(image=image):
        return None
    url = signed_download_url(image=image)
    if not url.startswith("/"):
        return url
    return absolute_url(url) if absolute_url is not None else urljoin(settings.PUBLIC_BASE_URL, url)


def api_key_render(generation: Generation) -> str | None:
    return generation.api_key.prefix if generation.api_key else None


def error_render(generation: Generation) -> dict[str, str] | None:
    if generation.status not in (Generation.Status.FAILED, Generation.Status.CANCELED) or not generation.error_code:
        return None
    return {"code": generation.error_code, "message": generation.error_message}


def charged_usd_render(generation: Generation) -> str | None:
    return None if generation.charged_micros is None else micros_to_usd(generation.charged_micros)


def _datetime(value: datetime | None) -> str | None:
    """DRF's `DateTimeField` output with its default settings (ISO 8601, the current time zone, UTC as `Z`)."""
    if value is None:
        return None
    text = value.astimezone(timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _strings(values: list | None) -> list | None:
    return None if values is None else [None if value is None else str(value) for value in values]
