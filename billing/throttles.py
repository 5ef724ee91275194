"""Per-tenant requests-per-minute limit, counted in the shared Django cache so every process sees one count.

A fixed one-minute window: `cache.add` starts the window's counter and `cache.incr` bumps it. On Redis both are
atomic; on the database cache `incr` is read-then-write, so a burst across processes can overshoot by a few
requests — acceptable for a rate limit, which is not money (the ledger is what must be exact).
"""

import time
from typing import TYPE_CHECKING

from django.core.cache import caches
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

if TYPE_CHECKING:  # rest_framework.views imports this module through DEFAULT_THROTTLE_CLASSES
    from rest_framework.views import APIView

from billing.selectors import tenant_limits

WINDOW_SECONDS = 60


def _window_key(tenant_id: int, window: int) -> str:
    return f"billing:rpm:{tenant_id}:{window}"


def tenant_requests_this_minute(*, tenant_id: int) -> int:
    return caches["default"].get(_window_key(tenant_id, int(time.time()) // WINDOW_SECONDS), 0)


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
        window = int(now) // WINDOW_SECONDS
        key = _window_key(tenant.pk, window)
        cache = caches["default"]
        cache.add(key, 0, timeout=WINDOW_SECONDS * 2)
        try:
            count = cache.incr(key)
        except ValueError:  # the window expired between add and incr
            cache.set(key, 1, timeout=WINDOW_SECONDS * 2)
            count = 1
        if count <= limit:
            return True
        self.wait_seconds = (window + 1) * WINDOW_SECONDS - now
        return False

    def wait(self) -> float | None:
        return self.wait_seconds
