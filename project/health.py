"""`/healthz`: database, cache, storage, and whether a django-q2 worker has shown signs of life recently."""

import dataclasses
import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

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


HEALTH_CHECKS = (
    "health_check.checks.Database",
    "health_check.checks.Cache",
    "health_check.checks.Storage",
    WorkerHeartbeat,
)

health_view = HealthCheckView.as_view(checks=HEALTH_CHECKS)
