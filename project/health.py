"""`/healthz`: database, cache, storage, and whether the maintenance lane is running its schedule."""

import dataclasses
import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

REAPER_LAST_RUN_KEY = "health:reaper-last-run"


def reaper_run_record() -> None:
    """Called by the scheduled reaper each time it runs on the maintenance lane (django-q2 qcluster)."""
    cache.set(REAPER_LAST_RUN_KEY, timezone.now().isoformat(), timeout=None)


@dataclasses.dataclass
class MaintenanceLane(HealthCheck):
    """The maintenance lane runs the reaper every REAPER_PERIOD_SECONDS; three missed periods mean scheduled work
    (reaper, webhook retries, billing checks, statements) has stopped, whatever else still answers."""

    def run(self) -> None:
        seen = cache.get(REAPER_LAST_RUN_KEY)
        if seen is None:
            raise ServiceUnavailable("The maintenance lane has not run the reaper yet")
        age = timezone.now() - datetime.datetime.fromisoformat(seen)
        if age.total_seconds() > 3 * settings.REAPER_PERIOD_SECONDS:
            raise ServiceUnavailable(f"The maintenance lane last ran the reaper {int(age.total_seconds())} s ago")


HEALTH_CHECKS = (
    "health_check.checks.Database",
    "health_check.checks.Cache",
    "health_check.checks.Storage",
    MaintenanceLane,
)

health_view = HealthCheckView.as_view(checks=HEALTH_CHECKS)
