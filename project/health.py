"""Health for load balancers, orchestrators and people.

- `/healthz/live` — the process answers (no dependency is touched): restart it if this fails.
- `/healthz/ready` — database, cache, storage and the maintenance lane: send it traffic only while this is 200.
  `/healthz` is the same (kept for the load balancers already pointed at it).

Always JSON with plain keys:

    {"status": "ok", "checks": {"database": "ok", "cache": "ok", "storage": "ok", "maintenance": "ok"}}

and 503 with `Retry-After` (plus the API's error object) when any check fails, each failing check saying what
failed in words an operator can act on. During a database outage the answer comes at once (the breaker in
`project/db_outage.py` already knows), and after the database is back the first check is handed a live connection
(the probe had the pool drop the dead ones).
"""

import asyncio
import dataclasses
import datetime
import time

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connections
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.checks import Cache, Database, Storage
from health_check.exceptions import HealthCheckException, ServiceUnavailable
from health_check.views import HealthCheckView

from project.api.errors import database_unavailable, error_body
from project.db_outage import database_outage, database_outage_record

REAPER_LAST_RUN_KEY = "health:reaper-last-run"
# A fresh process cannot know whether the lane ran while it was down: it gives the lane its full allowance from
# its own start before saying the lane stopped (a restart on an old database is not an outage of the lane).
_PROCESS_STARTED = time.monotonic()


def reaper_run_record() -> None:
    """Called by the scheduled reaper each time it runs on the maintenance lane (django-q2 qcluster)."""
    cache.set(REAPER_LAST_RUN_KEY, timezone.now().isoformat(), timeout=None)


def _cache_in_database() -> bool:
    return "DatabaseCache" in settings.CACHES["default"]["BACKEND"]


def _database_down() -> str | None:
    outage = database_outage()
    return f"unreachable: {outage}" if outage else None


def _closing_connections(run):
    """Sync checks run on the event loop's executor threads, outside any request: without this, a connection a
    check opened stays with that thread, and after an outage the next check is handed it dead."""

    def wrapped(self) -> None:
        try:
            run(self)
        finally:
            connections.close_all()

    return wrapped


@dataclasses.dataclass
class DatabaseCheck(Database):
    @_closing_connections
    def run(self) -> None:
        if down := _database_down():
            raise ServiceUnavailable(down)
        try:
            super().run()
        except ServiceUnavailable as error:
            cause = error.__cause__
            if isinstance(cause, DatabaseError):
                database_outage_record(error=cause)
            params = connections["default"].settings_dict
            where = params.get("HOST") or params.get("NAME")
            raise ServiceUnavailable(f"{connections['default'].vendor} at {where}: {cause or error}") from cause


@dataclasses.dataclass
class CacheCheck(Cache):
    async def run(self) -> None:
        if _cache_in_database() and (down := _database_down()):
            raise ServiceUnavailable(f"the cache table is in the database, which is {down}")
        try:
            await super().run()
        except HealthCheckException as error:
            raise ServiceUnavailable(
                f"{settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}: {error.message}"
                f" ({error.__cause__ or 'no detail'})"
            ) from error


@dataclasses.dataclass
class StorageCheck(Storage):
    @_closing_connections
    def run(self) -> None:
        try:
            super().run()
        except HealthCheckException as error:
            backend = settings.STORAGES["default"]["BACKEND"].rsplit(".", 1)[-1]
            raise ServiceUnavailable(f"{backend}: {error.message} ({error.__cause__ or 'no detail'})") from error


@dataclasses.dataclass
class MaintenanceLane(HealthCheck):
    """The maintenance lane runs the reaper every REAPER_PERIOD_SECONDS; three missed periods mean scheduled work
    (reaper, webhook retries, billing checks, statements) has stopped, whatever else still answers."""

    @_closing_connections
    def run(self) -> None:
        if _cache_in_database() and (down := _database_down()):
            raise ServiceUnavailable(f"unknown: its record is in the database, which is {down}")
        allowance = 3 * settings.REAPER_PERIOD_SECONDS
        try:
            seen = cache.get(REAPER_LAST_RUN_KEY)
        except DatabaseError as error:
            raise ServiceUnavailable(f"unknown: its record could not be read ({error})") from error
        if time.monotonic() - _PROCESS_STARTED <= allowance:
            return  # this process started recently: the lane has not had its allowance yet
        hint = "is `manage.py qcluster` running and connected to this database?"
        if seen is None:
            raise ServiceUnavailable(f"the maintenance lane has never run the reaper: {hint}")
        age = (timezone.now() - datetime.datetime.fromisoformat(seen)).total_seconds()
        if age > allowance:
            raise ServiceUnavailable(
                f"the maintenance lane last ran the reaper {int(age)} s ago (every {settings.REAPER_PERIOD_SECONDS} s"
                f" expected): {hint}"
            )


# Report name → check. The names are the JSON keys, so they stay stable and readable.
HEALTH_CHECKS: dict[str, type[HealthCheck]] = {
    "database": DatabaseCheck,
    "cache": CacheCheck,
    "storage": StorageCheck,
    "maintenance": MaintenanceLane,
}


class ReadinessView(HealthCheckView):
    checks = tuple(HEALTH_CHECKS.values())

    async def get(self, request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
        with self.get_executor() as executor:
            results = await asyncio.gather(*(check.get_result(executor) for check in self.get_checks()))
        checks = {
            name: "ok" if result.error is None else str(result.error.message)
            for name, result in zip(HEALTH_CHECKS, results, strict=True)
        }
        if all(value == "ok" for value in checks.values()):
            return JsonResponse({"status": "ok", "checks": checks})
        unavailable = database_unavailable()
        failing = ", ".join(name for name, value in checks.items() if value != "ok")
        body = {
            "status": "unavailable",
            "checks": checks,
            **error_body(unavailable.code, f"Unavailable: {failing}."),
        }
        return JsonResponse(body, status=503, headers={"Retry-After": str(unavailable.retry_after_seconds)})


async def liveness_view(request: HttpRequest) -> JsonResponse:
    """The process and its event loop answer; nothing else is asked."""
    return JsonResponse({"status": "ok"})


readiness_view = ReadinessView.as_view()
