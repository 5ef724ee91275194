"""`/healthz`: database, cache, storage, and whether a django-q2 worker has shown signs of life recently.

Always JSON with plain keys, for load balancers and people alike:

    {"status": "ok", "checks": {"database": "ok", "cache": "ok", "storage": "ok", "worker": "ok"}}

and 503 with `Retry-After` (plus the API's error object) when any check fails, the failing checks saying why.
"""

import asyncio
import dataclasses
import datetime

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.checks import Cache, Database, Storage
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from project.api.errors import database_unavailable, error_body

WORKER_HEARTBEAT_KEY = "health:worker-heartbeat"


def worker_heartbeat_record(**_: object) -> None:
    """Called in worker processes when they start and before each task (django-q2 signals)."""
    cache.set(WORKER_HEARTBEAT_KEY, timezone.now().isoformat(), timeout=None)


@dataclasses.dataclass
class WorkerHeartbeat(HealthCheck):
    """A worker runs the reaper every minute, so a heartbeat older than a few minutes means no worker is up."""

    def run(self) -> None:
        seen = cache.get(WORKER_HEARTBEAT_KEY)
        if seen is None:
            raise ServiceUnavailable("No django-q2 worker has reported yet")
        age = timezone.now() - datetime.datetime.fromisoformat(seen)
        if age.total_seconds() > settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS:
            raise ServiceUnavailable(f"Last worker heartbeat {int(age.total_seconds())} s ago")


# Report name → check. The names are the JSON keys, so they stay stable and readable.
HEALTH_CHECKS: dict[str, type[HealthCheck]] = {
    "database": Database,
    "cache": Cache,
    "storage": Storage,
    "worker": WorkerHeartbeat,
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
