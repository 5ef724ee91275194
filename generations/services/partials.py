"""Partial images on their way from the forwarder to the event streams (`stream: true` with `partial_images`, and
`GET /v1/generations/{id}/events`).

A partial is a preview the upstream streams while it draws (generations/providers/openai_compat.py). It is relayed,
never stored in our storage nor billed: the final image alone is stored and charged, as without streaming. The
forwarder and the web process holding the client's stream are different processes (often hosts), and a partial is a
whole base64 image (megabytes at gpt-image-2's sizes), far over PostgreSQL NOTIFY's 8000 bytes. So the image goes to
the shared cache (CACHE_URL: Redis, or the database table by default) under the generation and its index, for
STREAM_PARTIAL_TTL_SECONDS only, and a small "generation N has a partial" notice wakes the streams
(generations/notifications.py, every transport). A stream then reads the indexes it has not sent yet.
"""

import structlog
from django.conf import settings
from django.core.cache import cache

from generations.notifications import notify_generation_partial

logger = structlog.get_logger(__name__)


def _key(*, generation_id: int, index: int) -> str:
    return f"generation-partial:{generation_id}:{index}"


def partial_images_asked(*, upstream_body: dict) -> int:
    """How many partial images a generation's call streams (0 unless it was sent in streaming mode: the catalog
    sets `stream` only where the upstream streams partials)."""
    if upstream_body.get("stream") is not True:
        return 0
    count = upstream_body.get("partial_images")
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def generation_partial_publish(*, generation_id: int, index: int, b64_json: str) -> bool:
    """Hand one partial image to the streams of this generation (any process). Best effort, like every notice:
    False when it was dropped (an index out of range, or larger than an output may be)."""
    if not 0 <= index < 16 or len(b64_json) > settings.OUTPUT_MAX_BYTES * 4 // 3 + 4:
        logger.warning("generation.partial_dropped", generation_id=generation_id, index=index, chars=len(b64_json))
        return False
    cache.set(
        _key(generation_id=generation_id, index=index), {"b64_json": b64_json},
        timeout=settings.STREAM_PARTIAL_TTL_SECONDS,
    )
    notify_generation_partial(generation_id=generation_id)
    return True


def generation_partial_get(*, generation_id: int, index: int) -> dict | None:
    """Partial image `index` of a generation (`{"b64_json"}`), while the cache keeps it."""
    return cache.get(_key(generation_id=generation_id, index=index))
