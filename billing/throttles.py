"""Per-tenant requests-per-minute limit, one count shared by every process, in a fixed one-minute window.

With a Redis cache (`CACHE_URL=redis://…`) the count is an atomic `INCR` plus an expiry in one round trip;
otherwise it is one upsert on `RequestCount` (one row per tenant, reset when the minute changes). Both are exact
under concurrency; the limit itself comes from the read-cached plan, so a request costs one statement here.
"""

import contextlib
import time
from typing import TYPE_CHECKING

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

if TYPE_CHECKING:  # rest_framework.views imports this module through DEFAULT_THROTTLE_CLASSES
    from rest_framework.views import APIView

from billing.models import RequestCount
from billing.selectors.limits import tenant_limits
from project.sqlcompose import prepared_cursor

WINDOW_SECONDS = 60


def _redis_cache() -> RedisCache | None:
    cache = caches["default"]
    return cache if isinstance(cache, RedisCache) else None


def _redis_key(cache: RedisCache, tenant_id: int, minute: int) -> str:
    return cache.make_and_validate_key(f"billing:rpm:{tenant_id}:{minute}")


_UPSERT = f"""
INSERT INTO {RequestCount._meta.db_table} (tenant_id, minute, count) VALUES (%s, %s, 1)
ON CONFLICT (tenant_id) DO UPDATE SET
    count = CASE WHEN {RequestCount._meta.db_table}.minute = excluded.minute
                 THEN {RequestCount._meta.db_table}.count + 1 ELSE 1 END,
    minute = excluded.minute
RETURNING count
"""


def tenant_request_count(*, tenant_id: int, minute: int) -> int:
    """Count one more request of the tenant in this minute and return the minute's count so far."""
    cache = _redis_cache()
    if cache is not None:
        try:
            client = cache._cache.get_client(write=True)
            key = _redis_key(cache, tenant_id, minute)
            with client.pipeline(transaction=True) as pipe:
                count, _ = pipe.incr(key).expire(key, WINDOW_SECONDS * 2).execute()
            return int(count)
        except RedisError:
            # Redis down: count in the database instead, so a cache outage does not stop submits (the minute's
            # count then starts over there: a tenant may get up to one minute's limit more, once).
            pass
    with prepared_cursor() if connection.vendor == "postgresql" else connection.cursor() as cursor:
        cursor.execute(_UPSERT, [tenant_id, minute])
        return cursor.fetchone()[0]


def tenant_requests_this_minute(*, tenant_id: int) -> int:
    minute = int(time.time()) // WINDOW_SECONDS
    cache = _redis_cache()
    if cache is not None:
        with contextlib.suppress(RedisError):
            return int(cache._cache.get_client().get(_redis_key(cache, tenant_id, minute)) or 0)
    row = RequestCount.objects.filter(tenant_id=tenant_id, minute=minute).values_list("count", flat=True).first()
    return row or 0


class TenantRateThrottle(BaseThrottle):
    """Refusals surface as 429 `rate_limited` with `Retry-After` (DRF's Throttled, mapped in project.api.errors)."""

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def allow_request(self, request: Request, view: "APIView") -> bool:
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            return True
        limit = tenant_limits(tenant=tenant).requests_per_minute
        if not limit:
            return True
        now = time.time()
        minute = int(now) // WINDOW_SECONDS
        if tenant_request_count(tenant_id=tenant.pk, minute=minute) <= limit:
            return True
        self.wait_seconds = (minute + 1) * WINDOW_SECONDS - now
        return False

    def wait(self) -> float | None:
        return self.wait_seconds
