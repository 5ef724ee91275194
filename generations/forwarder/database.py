"""The forwarder's database access: a small pool of threads (FORWARD_DB_THREADS) with their own connections, so the
event loop never waits on a query and settlements do not queue behind one thread.

A database error is retried with backoff for as long as the generation's lease allows (`leased_write`): the
upstream call keeps running meanwhile and its result is settled when the database is back, so an outage shorter
than the lease sends nothing upstream twice.
"""

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol, TypeVar

import psycopg
import structlog
from django.conf import settings
from django.db import InterfaceError, InternalError, OperationalError, close_old_connections, connections

logger = structlog.get_logger(__name__)
T = TypeVar("T")
DB_ERRORS = (OperationalError, InterfaceError)


class LeaseExpired(Exception):
    """The database stayed unreachable until this generation's lease ran out: another worker may take it."""


class Leased(Protocol):
    lease_deadline: float  # monotonic; our lease is certainly valid until then (renewed while the call runs)


def _call(function: Callable[..., T], kwargs: dict[str, Any]) -> T:
    try:
        return function(**kwargs)
    except DB_ERRORS:
        # The connection is unusable after this; the next call on this thread reconnects.
        with contextlib.suppress(Exception):
            connections["default"].close()
        raise
    except InternalError as error:
        if not isinstance(error.__cause__, psycopg.errors.IdleInTransactionSessionTimeout):
            raise
        # PostgreSQL ended the session mid-transaction (idle_in_transaction_session_timeout, e.g. this process
        # starved of CPU): an outage of this connection like any other, not a reason to stop the forwarder.
        with contextlib.suppress(Exception):
            connections["default"].close()
        raise OperationalError(str(error)) from error


class Database:
    def __init__(self, *, threads: int) -> None:
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="forwarder-db")
        self.down_since: float | None = None

    async def run(self, function: Callable[..., T], /, *, until: float | None = None, **kwargs: Any) -> T:
        """Run `function` on the pool. Database errors are retried with backoff until `until` (a monotonic
        deadline; None: no retry) and then re-raised."""
        delay = 0.05
        loop = asyncio.get_running_loop()
        while True:
            try:
                result = await loop.run_in_executor(self.executor, partial(_call, function, kwargs))
            except DB_ERRORS as error:
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    logger.warning("forwarder.database_unavailable", error=repr(error)[:300])
                if until is None or time.monotonic() + delay >= until:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, settings.FORWARD_DB_RETRY_MAX_SECONDS)
                continue
            if self.down_since is not None:
                logger.warning("forwarder.database_back", after_seconds=round(time.monotonic() - self.down_since, 1))
                self.down_since = None
            return result

    async def leased_write(self, lease: Leased, function: Callable[..., T], /, **kwargs: Any) -> T:
        """A write under a generation's lease: retried through database errors while the lease holds (then
        `LeaseExpired`), and shielded from cancellation so a cancel or shutdown never abandons it half way."""
        try:
            return await asyncio.shield(self.run(function, until=lease.lease_deadline, **kwargs))
        except DB_ERRORS as error:
            raise LeaseExpired() from error

    async def close(self) -> None:
        """Close every thread's connection and the pool: a barrier makes each thread run exactly one close."""
        barrier = threading.Barrier(self.threads, timeout=5)

        def close() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            close_old_connections()
            connections.close_all()

        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self.executor, close) for _ in range(self.threads)), return_exceptions=True
        )
        self.executor.shutdown(wait=True)
