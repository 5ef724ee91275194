"""`/healthz`: database, cache, storage, and whether the maintenance lane is running its schedule.

Always JSON with plain keys, for load balancers and people alike:

    {"status": "ok", "checks": {"database": "ok", "cache": "ok", "storage": "ok", "maintenance": "ok"}}

and 503 with `Retry-After` (plus the API's error object) when any check fails, the failing checks saying why.
"""

import asyncio
import dataclasses
import datetime
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.checks import Cache, Database, Storage
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from project.api.errors import database_unavailable, error_body

REAPER_LAST_RUN_KEY = "health:reaper-last-run"
# When this process started, as far as /healthz can tell: it is imported with the URLs, before the first request.
PROCESS_STARTED = time.monotonic()


def reaper_run_record() -> None:
    """Called by the scheduled reaper each time it runs on the maintenance lane (django-q2 qcluster)."""
    cache.set(REAPER_LAST_RUN_KEY, timezone.now().isoformat(), timeout=None)


@dataclasses.dataclass
class MaintenanceLane(HealthCheck):
    """The maintenance lane runs the reaper every REAPER_PERIOD_SECONDS; three missed periods mean scheduled work
    (reaper, webhook retries, billing checks, statements) has stopped, whatever else still answers.

    Missed periods count from the later of the reaper's last run and this process's start: the lane is restarted
    with the web tier, so a node (re)started on an existing database — whose last recorded run is from before the
    restart — or on a new one, is healthy until the lane has had its three periods to run (a load balancer must
    not take a fresh node out). After that a missing or old run fails the check as before."""

    def run(self) -> None:
        limit = 3 * settings.REAPER_PERIOD_SECONDS
        up = time.monotonic() - PROCESS_STARTED
        if up <= limit:
            return
        seen = cache.get(REAPER_LAST_RUN_KEY)
        if seen is None:
            raise ServiceUnavailable(f"The maintenance lane has not run the reaper in the {int(up)} s since start")
        age = timezone.now() - datetime.datetime.fromisoformat(seen)
        if age.total_seconds() > limit:
            raise ServiceUnavailable(f"The maintenance lane last ran the reaper {int(age.total_seconds())} s ago")


# Report name → check. The names are the JSON keys, so they stay stable and readable.
HEALTH_CHECKS: dict[str, type[HealthCheck]] = {
    "database": Database,
    "cache": Cache,
    "storage": Storage,
    "maintenance": MaintenanceLane,
}


class HealthView(HealthCheckView):
    checks = tuple(HEALTH_CHECKS.values())

    async def get(self, request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
        with self.get_executor() as executor:
            results = await asyncio.gather(*(check.get_result(executor) for check in self.get_checks()))
        checks = {
            name: "ok" if result.error is None else str(result.error)
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


health_view = HealthView.as_view()
