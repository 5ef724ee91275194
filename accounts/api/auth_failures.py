"""Failed API-key authentications, counted per client address in the shared cache.

Guessing keys costs us a database lookup per try; after AUTH_FAILURE_LIMIT failures within a window of
AUTH_FAILURE_WINDOW_SECONDS an address gets 429 with Retry-After, before any lookup. Good keys are not caught by a
neighbour's (or their own) typos: a key that authenticated recently is remembered (its SHA-256, never the secret)
and still goes through from a blocked address. A fixed window, like the tenant rate limit: `cache.add` starts it and
`cache.incr` counts (atomic on Redis; on the database cache a burst may overshoot by a few, which is harmless).
"""

import contextlib
import hashlib
import time

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from redis.exceptions import RedisError

from project import errors

# A remembered key stays trusted this long after it last authenticated (refreshed at most once a minute).
VERIFIED_KEY_SECONDS = 24 * 3600


class TooManyAuthFailures(errors.RateLimited):
    code = "too_many_failed_authentications"
    message = "Too many failed authentication attempts from this address. Retry later."


def client_address(request: HttpRequest) -> str:
    """The peer address; behind a trusted proxy (DJANGO_BEHIND_PROXY), the address the proxy appended last."""
    if settings.SECURE_PROXY_SSL_HEADER:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if forwarded and forwarded[-1]:
            return forwarded[-1][:64]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _window() -> tuple[int, float]:
    now = time.time()
    return int(now) // settings.AUTH_FAILURE_WINDOW_SECONDS, now


def _failures_key(address: str, window: int) -> str:
    return f"auth:failures:{address}:{window}"


def _verified_key(secret: str) -> str:
    return "auth:verified:" + hashlib.sha256(secret.encode()).hexdigest()


def auth_failures_check(*, address: str, secret: str | None) -> None:
    """Raise TooManyAuthFailures if the address is over its limit and the key is not one known to be good."""
    window, now = _window()
    cache = caches["default"]
    try:
        if cache.get(_failures_key(address, window), 0) < settings.AUTH_FAILURE_LIMIT:
            return
        if secret is not None and cache.get(_verified_key(secret)):
            return
    except RedisError:
        return  # Redis down: no count to go by; the key check itself still runs (a guard, not the lock)
    retry_after = (window + 1) * settings.AUTH_FAILURE_WINDOW_SECONDS - now
    raise TooManyAuthFailures(retry_after_seconds=max(1, int(retry_after + 0.999)))


def auth_failure_record(*, address: str) -> None:
    window, _ = _window()
    key = _failures_key(address, window)
    cache = caches["default"]
    with contextlib.suppress(RedisError):  # Redis down: this failure goes uncounted
        cache.add(key, 0, timeout=settings.AUTH_FAILURE_WINDOW_SECONDS * 2)
        try:
            cache.incr(key)
        except ValueError:  # the window's entry expired between add and incr
            cache.set(key, 1, timeout=settings.AUTH_FAILURE_WINDOW_SECONDS * 2)


def auth_verified_record(*, secret: str) -> None:
    with contextlib.suppress(RedisError):
        caches["default"].set(_verified_key(secret), 1, timeout=VERIFIED_KEY_SECONDS)
