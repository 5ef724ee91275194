"""Per-tenant slots for clients waiting on a result (`Prefer: wait`, `/v1/images/*`), capped by the plan's
`max_concurrent_waits` so one tenant cannot fill the web tier with open requests.

A slot expires by itself (the wait's length plus a margin): a web process killed mid-wait leaks nothing for long.
With Redis configured (Q_BROKER=redis) the slots are a sorted set per tenant (member = slot token, score = expiry),
changed by one Lua script; otherwise (or while Redis is down) they are numbered keys in the shared cache, taken
with `cache.add`, which is atomic (unique key insert / SET NX).
"""

import secrets
import time
from dataclasses import dataclass

import redis
import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import connections

from accounts.models import Tenant
from billing.selectors import tenant_limits

logger = structlog.get_logger(__name__)

# A slot outlives its wait by this much: the answer is still being built and sent when the wait ends.
SLOT_MARGIN_SECONDS = 30

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


@dataclass(frozen=True)
class WaitSlot:
    tenant_id: int
    token: str
    store: str  # "redis" or "cache"
    key: str


_redis_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return _redis_client


def _scope() -> str:
    # Redis and the cache may be shared by several checkouts or test databases: slots are per database.
    return f"imagegen:{connections['default'].settings_dict['NAME']}:waits"


def _acquire_redis(*, tenant_id: int, cap: int, ttl: int) -> WaitSlot | None:
    key = f"{_scope()}:{tenant_id}"
    token = secrets.token_hex(8)
    now = time.time()
    taken = _redis().eval(_ACQUIRE, 1, key, now, cap, now + ttl, token, ttl + 60)
    return WaitSlot(tenant_id=tenant_id, token=token, store="redis", key=key) if taken else None


def _acquire_cache(*, tenant_id: int, cap: int, ttl: int) -> WaitSlot | None:
    token = secrets.token_hex(8)
    for number in range(cap):
        key = f"{_scope()}:{tenant_id}:{number}"
        if cache.add(key, token, timeout=ttl):
            return WaitSlot(tenant_id=tenant_id, token=token, store="cache", key=key)
    return None


def wait_slot_acquire(*, tenant: Tenant, seconds: float) -> WaitSlot | None:
    """A slot for a wait of up to `seconds`, or None when the tenant already has its plan's number of waits."""
    cap = tenant_limits(tenant=tenant).max_concurrent_waits
    if cap is not None and cap <= 0:
        return None
    if cap is None:
        return WaitSlot(tenant_id=tenant.pk, token="", store="none", key="")
    ttl = int(seconds) + SLOT_MARGIN_SECONDS
    if settings.Q_BROKER == "redis":
        try:
            return _acquire_redis(tenant_id=tenant.pk, cap=cap, ttl=ttl)
        except redis.RedisError as error:
            logger.warning("wait_slot_redis_unavailable", error=str(error))
    return _acquire_cache(tenant_id=tenant.pk, cap=cap, ttl=ttl)


def wait_slot_release(*, slot: WaitSlot) -> None:
    try:
        if slot.store == "redis":
            _redis().zrem(slot.key, slot.token)
        elif slot.store == "cache" and cache.get(slot.key) == slot.token:
            cache.delete(slot.key)
    except redis.RedisError as error:  # the slot expires on its own
        logger.warning("wait_slot_release_failed", error=str(error))
