"""An in-process cache for read-mostly rows (plans, prices, the blocklist, API keys), invalidated at once in every
process by a shared version token.

Every submit used to read the same plan, price and rule rows several times; here each process keeps what it
loaded, tagged with the version token it read *before* loading. A change to any registered model writes a new
token (in the changing transaction, and again after it commits, so a process that reloaded in between, from
rows not yet committed, is told once more). A request reads the token once, on its first cached lookup, from the
shared Django cache (`CACHES["default"]`: one Redis GET, or one SELECT on the database cache); work outside a
request (workers, shells) reads it on every lookup. A token that vanished (a cache eviction, a flushed test
database) counts as a change, so losing it can only cost a reload, never serve stale rows.
"""

import contextlib
import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

from django.core.cache import caches
from django.db import DatabaseError, transaction
from django.db.models import Model
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

from project.hybrid_middleware import HybridMiddleware

VERSION_KEY = "readcache:version"
MAX_ENTRIES = 50_000  # a process holding more than this starts over rather than growing without bound

T = TypeVar("T")
logger = logging.getLogger(__name__)

_lock = threading.Lock()
_entries: dict[Hashable, Any] = {}
_unavailable_logged_at = 0.0  # monotonic: an outage is logged once a minute, not on every request
_NO_VERSION = ""  # this request found the shared cache unreachable (a real version is a UUID)
_loaded_version: str | None = None
# The version this request saw, or None when it has not looked yet (or runs outside a request).
_request_version: contextvars.ContextVar[str | None] = contextvars.ContextVar("readcache_version", default=None)
_in_request: contextvars.ContextVar[bool] = contextvars.ContextVar("readcache_in_request", default=False)


def _shared_version() -> str | None:
    """None while the shared cache cannot be read (Redis down): then nothing this process holds can be known to be
    current, so lookups go to the database and nothing is kept, rather than every request failing."""
    cache = caches["default"]
    try:
        version = cache.get(VERSION_KEY)
        if version is None:
            fresh = uuid.uuid4().hex
            cache.add(VERSION_KEY, fresh, timeout=None)
            version = cache.get(VERSION_KEY) or fresh
    except RedisError as error:
        global _unavailable_logged_at
        if time.monotonic() - _unavailable_logged_at > 60:
            _unavailable_logged_at = time.monotonic()
            logger.warning("readcache: the shared cache is unavailable, reading from the database: %r", error)
        return None
    return version


def _current_version() -> str | None:
    if not _in_request.get():
        return _shared_version()
    version = _request_version.get()
    if version is None:
        # Remembered for the request either way: while Redis is down, one wait for it per request, not per lookup.
        version = _shared_version() or _NO_VERSION
        _request_version.set(version)
    return None if version == _NO_VERSION else version


def readcache_get(key: Hashable, load: Callable[[], T]) -> T:
    """The cached value for `key`, loading it with `load()` when this process has none for the current version.
    Cached values are shared between threads: treat them as read-only. None is not cached (a lookup that found
    nothing, e.g. an unknown API key, is not worth keeping and must not fill the cache)."""
    global _loaded_version
    version = _current_version()
    if version is None:
        with _lock:  # what changed meanwhile cannot be known: start over once the shared cache is back
            _entries.clear()
            _loaded_version = None
        return load()
    with _lock:
        if version != _loaded_version:
            _entries.clear()
            _loaded_version = version
        elif key in _entries:
            return _entries[key]
    value = load()
    with _lock:
        if value is not None and _loaded_version == version:
            if len(_entries) >= MAX_ENTRIES:
                _entries.clear()
            _entries[key] = value
    return value


def readcache_peek(key: Hashable) -> Any | None:
    """What this process holds for `key` under the current version, without loading anything."""
    version = _current_version()
    with _lock:
        return _entries.get(key) if version is not None and version == _loaded_version else None


def readcache_clear() -> None:
    """Forget everything this process cached (the next lookup reloads)."""
    global _loaded_version
    with _lock:
        _entries.clear()
        _loaded_version = None
    _request_version.set(None)


def _publish_new_version() -> None:
    caches["default"].set(VERSION_KEY, uuid.uuid4().hex, timeout=None)


def readcache_bump() -> None:
    """Call after changing cached rows by other means than `Model.save()`/`delete()` (e.g. `QuerySet.update`)."""
    readcache_clear()
    _publish_new_version()
    transaction.on_commit(_publish_new_version)


def readcache_bump_after_migrate(**kwargs: Any) -> None:
    """`post_migrate` receiver: a migration writes rows (catalog, prices) with `QuerySet` methods or historical
    models, which send no save signals, so running processes would serve the old rows until restarted.

    On a fresh database the cache table does not exist yet (`createcachetable` runs after `migrate`); then there is
    no token to bump and nothing cached anywhere, so the error is only logged. The savepoint keeps a caller's
    transaction usable on PostgreSQL after the failed statement."""
    try:
        with transaction.atomic():
            _publish_new_version()
    except DatabaseError as error:
        logger.info("readcache: no version token to bump after migrate (%s)", error.__class__.__name__)
    readcache_clear()


def _on_change(sender: type[Model], **kwargs: Any) -> None:
    readcache_bump()


def readcache_invalidate_on_change(*models: type[Model], skip_creation: bool = False) -> None:
    """Bump the version whenever a row of these models is saved or deleted. With `skip_creation`, a new row does
    not bump (for models looked up by a key that cannot have been cached before the row existed)."""
    for model in models:
        receiver = _on_change
        if skip_creation:

            def receiver(sender: type[Model], created: bool = False, **kwargs: Any) -> None:
                if not created:
                    readcache_bump()

        post_save.connect(receiver, sender=model, weak=False, dispatch_uid=f"readcache-save-{model._meta.label}")
        post_delete.connect(_on_change, sender=model, weak=False, dispatch_uid=f"readcache-delete-{model._meta.label}")


class ReadCacheMiddleware(HybridMiddleware):
    """Scopes the version read to one request: the first cached lookup reads it, later ones reuse it.

    Both sync and async (no thread hop). The context variables set here reach the view's thread: asgiref runs it
    in a copy of this context."""

    def _call(self, request: HttpRequest) -> HttpResponse:
        with _request_scope():
            return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        with _request_scope():
            return await self.get_response(request)


@contextlib.contextmanager
def _request_scope() -> Iterator[None]:
    in_request = _in_request.set(True)
    version = _request_version.set(None)
    try:
        yield
    finally:
        _request_version.reset(version)
        _in_request.reset(in_request)
