"""A database outage answered at once: the first request that finds PostgreSQL unreachable opens the breaker; until
one probe connects again, API requests answer 503 `service_unavailable` with `Retry-After` immediately instead of
each waiting out the connection pool (10 s each before this; the pool now waits DATABASE_POOL_TIMEOUT at most).

- Only connection failures open it (no SQLSTATE, class 08 "connection exception", 57P "operator intervention",
  or the pool finding no connection): a deadlock or a statement timeout is one request's problem, not an outage.
- While it is open, one thread per process probes with a fresh connection (`connect_timeout` 1 s) every
  DATABASE_OUTAGE_PROBE_SECONDS. When a probe succeeds, the pool is told to check its idle connections (every one
  of them died with the server) before the breaker closes, so no request and no readiness check is handed a dead
  connection afterwards.
- Not a library: what is needed is this process's view of one dependency tied to Django's connection pool; the
  circuit-breaker packages (pybreaker, aiobreaker) count failures per decorated call and know nothing of the pool.
"""

import threading
import time
from typing import Any

import psycopg
import structlog
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from project.hybrid_middleware import HybridMiddleware

logger = structlog.get_logger(__name__)

_lock = threading.Lock()
_open_since: float | None = None  # monotonic time of the first failure of this outage
_last_error = ""
_probe: threading.Thread | None = None


def is_connection_failure(error: BaseException) -> bool:
    """Whether a database error means "the server is unreachable" rather than "this statement failed"."""
    cause: BaseException | None = error
    while cause is not None:
        if type(cause).__name__ == "PoolTimeout":
            return True
        if isinstance(cause, psycopg.OperationalError):
            state = cause.sqlstate
            return state is None or state.startswith(("08", "57P"))
        if isinstance(cause, psycopg.Error):
            return False
        cause = cause.__cause__ or cause.__context__
    return False


def database_outage_record(*, error: BaseException) -> None:
    """Open the breaker after a connection failure (ignored for other database errors)."""
    global _open_since, _last_error, _probe
    if connections["default"].vendor != "postgresql" or not is_connection_failure(error):
        return
    with _lock:
        _last_error = _plain(error)
        if _open_since is not None:
            return
        _open_since = time.monotonic()
        _probe = threading.Thread(target=_probe_until_back, name="database-outage-probe", daemon=True)
        _probe.start()
    logger.warning("database_outage_started", error=_last_error)


def database_outage() -> str | None:
    """None while the database is reachable, else what failed and for how long, in words for an operator."""
    with _lock:
        if _open_since is None:
            return None
        params = connections["default"].settings_dict
        where = f"{params.get('HOST') or 'localhost'}:{params.get('PORT') or 5432}"
        return f"PostgreSQL at {where} unreachable for {time.monotonic() - _open_since:.0f} s: {_last_error}"


def _plain(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]


def _probe_until_back() -> None:
    global _open_since, _last_error
    params = connections["default"].get_connection_params()
    params.pop("pool", None)
    params.pop("prepare_threshold", None)
    params.pop("cursor_factory", None)
    params["connect_timeout"] = 1
    while True:
        time.sleep(settings.DATABASE_OUTAGE_PROBE_SECONDS)
        try:
            with psycopg.connect(**params, autocommit=True) as probe:
                probe.execute("SELECT 1")
        except psycopg.Error as error:
            with _lock:
                _last_error = _plain(error)
            continue
        pool = connections["default"].pool
        if pool is not None:
            pool.check()  # idle connections died with the server: drop them before anyone is handed one
        with _lock:
            down_for = time.monotonic() - (_open_since or time.monotonic())
            _open_since = None
        logger.warning("database_outage_ended", seconds=round(down_for, 1))
        return


def outage_response(request: HttpRequest) -> JsonResponse:
    from project.api.errors import database_unavailable, json_error_response

    unavailable = database_unavailable()
    return json_error_response(
        request, 503, unavailable.code, unavailable.message,
        headers={"Retry-After": str(unavailable.retry_after_seconds)},
    )


# Answer without the database during an outage; everything else (admin pages, /healthz/live, /metrics, the
# readiness checks that say what failed) goes on.
_GUARDED_PREFIX = "/v1/"


class DatabaseOutageMiddleware(HybridMiddleware):
    """While the breaker is open, API requests get their 503 at once. Sync and async alike (no thread hop)."""

    def _refuse(self, request: HttpRequest) -> bool:
        if _open_since is None or not request.path_info.startswith(_GUARDED_PREFIX):
            return False
        try:
            resolve(request.path_info)
        except Resolver404:
            return False  # an unknown path is a 404 whatever the database does
        return True

    def _call(self, request: HttpRequest) -> HttpResponse:
        if self._refuse(request):
            return outage_response(request)
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> Any:
        if self._refuse(request):
            return outage_response(request)
        return await self.get_response(request)
