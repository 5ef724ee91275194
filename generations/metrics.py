"""What the forwarder counts (upstream calls in flight, their latency and failures, settlements) and the
generation figures `/metrics` reads from the database at scrape time (queue depth per plan, the oldest queued
generation, the maintenance lane's reaper age). `project/metrics.py` says how they are exposed."""

from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from billing.selectors.limits import tenant_plan_names
from generations.models import Generation
from project.health import REAPER_LAST_RUN_KEY

UPSTREAM_IN_FLIGHT = Gauge(
    "imagegen_forwarder_upstream_in_flight", "Upstream calls this forwarder has on the wire.",
    multiprocess_mode="livesum",
)
UPSTREAM_SECONDS = Histogram(
    "imagegen_upstream_call_duration_seconds", "One upstream call, request sent to answer read, by model family.",
    ["family"],
    buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300),
)
UPSTREAM_FAILURES = Counter(
    "imagegen_upstream_failures_total", "Upstream calls that did not answer an image, by our error code.", ["code"],
)
SETTLEMENTS = Counter(
    "imagegen_settlements_total", "Generations brought to a final status by the forwarder, by status.", ["status"],
)


class GenerationsCollector:
    """Read on each scrape; two indexed aggregate queries and one cache read."""

    def collect(self) -> Any:
        open_rows = (
            Generation.objects.filter(status__in=[Generation.Status.QUEUED, Generation.Status.RUNNING])
            .values("tenant_id", "status")
            .annotate(count=Count("id"))
        )
        rows = list(open_rows)
        plans = tenant_plan_names(tenant_ids={row["tenant_id"] for row in rows})
        depth: dict[tuple[str, str], int] = {}
        for row in rows:
            key = (row["status"], plans.get(row["tenant_id"], ""))
            depth[key] = depth.get(key, 0) + row["count"]
        family = GaugeMetricFamily(
            "imagegen_generations_open", "Generations queued or running, by status and the tenant's plan.",
            labels=["status", "plan"],
        )
        for (status, plan), count in sorted(depth.items()):
            family.add_metric([status, plan], count)
        yield family

        oldest = Generation.objects.filter(status=Generation.Status.QUEUED).aggregate(at=Min("created_at"))["at"]
        yield GaugeMetricFamily(
            "imagegen_queue_oldest_seconds", "Age of the oldest queued generation (0: none queued).",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
        )
        seen = cache.get(REAPER_LAST_RUN_KEY)
        yield GaugeMetricFamily(
            "imagegen_reaper_age_seconds",
            "Seconds since the maintenance lane last ran the reaper (-1: never recorded).",
            value=(timezone.now() - datetime.fromisoformat(seen)).total_seconds() if seen else -1.0,
        )
