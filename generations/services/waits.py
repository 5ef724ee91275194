"""Per-tenant slots for clients waiting on a result (`Prefer: wait`, `/v1/images/*`), capped by the plan's
`max_concurrent_waits` so one tenant cannot fill the web tier with open requests.

A slot expires by itself (the wait's length plus a margin): a web process killed mid-wait leaks nothing for long.
With Redis configured (Q_BROKER=redis) the slots are a sorted set per tenant (member = slot token, score = expiry),
changed by one Lua script. Otherwise (or while Redis is down) they are `OpenWait` rows, taken in one transaction
that first holds a per-tenant lock (a PostgreSQL advisory lock; SQLite's IMMEDIATE transactions are serial anyway),
so two acquirers can neither both reuse one expired slot nor both take the last free one. The shared cache's `add`
was not enough: the database cache reads an expired key and overwrites it without a lock, so a just-expired slot
went to every acquirer that saw it expired.

Waits of plans without a cap are recorded too, so `GET /v1/quota` can say how many are open.
"""

import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
import structlog
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from accounts.models import Tenant
from billing.selectors.limits import tenant_limits
from generations.models import OpenWait

logger = structlog.get_logger(__name__)

# A slot outlives its wait by this much: the answer is still being built and sent when the wait ends.
SLOT_MARGIN_SECONDS = 30
# pg_advisory_xact_lock(WAIT_LOCK_KEY, tenant id): "this tenant's wait slots" (an arbitrary constant).
WAIT_LOCK_KEY = 0x3A17

# ARGV: now, cap (-1: none), expiry, token, key TTL
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local cap = tonumber(ARGV[2])
if cap >= 0 and redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


@dataclass(frozen=True)
class WaitSlot:
    tenant_id: int
    token: str
    store: str  # "redis" or "database"
    key: str


_redis_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return _redis_client


def _scope() -> str:
    # Redis may be shared by several checkouts or test databases: slots are per database.
    return f"imagegen:{connections['default'].settings_dict['NAME']}:waits"


def _redis_key(tenant_id: int) -> str:
    return f"{_scope()}:{tenant_id}"


def _acquire_redis(*, tenant_id: int, cap: int | None, ttl: int) -> WaitSlot | None:
    key = _redis_key(tenant_id)
    token = secrets.token_hex(8)
    now = time.time()
    taken = _redis().eval(_ACQUIRE, 1, key, now, -1 if cap is None else cap, now + ttl, token, ttl + 60)
    return WaitSlot(tenant_id=tenant_id, token=token, store="redis", key=key) if taken else None


def _acquire_database(*, tenant_id: int, cap: int | None, ttl: int) -> WaitSlot | None:
    token = secrets.token_hex(8)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [WAIT_LOCK_KEY, tenant_id])
        now = timezone.now()  # after the lock: a slot that expired while we waited for it is free
        slots = OpenWait.objects.filter(tenant_id=tenant_id)
        slots.filter(expires_at__lte=now).delete()
        if cap is not None and slots.count() >= cap:
            return None
        OpenWait.objects.create(tenant_id=tenant_id, token=token, expires_at=now + timedelta(seconds=ttl))
    return WaitSlot(tenant_id=tenant_id, token=token, store="database", key=token)


def wait_slot_acquire(*, tenant: Tenant, seconds: float) -> WaitSlot | None:
    """A slot for a wait of up to `seconds`, or None when the tenant already has its plan's number of waits."""
    cap = tenant_limits(tenant=tenant).max_concurrent_waits
    if cap is not None and cap <= 0:
        return None
    ttl = int(seconds) + SLOT_MARGIN_SECONDS
    if settings.Q_BROKER == "redis":
        try:
            return _acquire_redis(tenant_id=tenant.pk, cap=cap, ttl=ttl)
        except redis.RedisError as error:
            logger.warning("wait_slot_redis_unavailable", error=str(error))
    return _acquire_database(tenant_id=tenant.pk, cap=cap, ttl=ttl)


def wait_slot_release(*, slot: WaitSlot) -> None:
    try:
        if slot.store == "redis":
            _redis().zrem(slot.key, slot.token)
        else:
            OpenWait.objects.filter(token=slot.token).delete()
    except redis.RedisError as error:  # the slot expires on its own
        logger.warning("wait_slot_release_failed", error=str(error))


def wait_slots_in_use(*, tenant: Tenant) -> int:
    """The tenant's open waits: in Redis when it is configured, plus any taken in the database while it was down."""
    in_redis = 0
    if settings.Q_BROKER == "redis":
        try:
            in_redis = _redis().zcount(_redis_key(tenant.pk), f"({time.time()}", "+inf")
        except redis.RedisError as error:
            logger.warning("wait_slot_redis_unavailable", error=str(error))
    return in_redis + OpenWait.objects.filter(tenant_id=tenant.pk, expires_at__gt=timezone.now()).count()
