"""The webhook outbox's backlog, read by `/metrics` at scrape time (`project/metrics.py`)."""

from typing import Any

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from webhooks.models import WebhookDelivery


class WebhookBacklogCollector:
    def collect(self) -> Any:
        pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).aggregate(
            count=Count("id"), oldest=Min("created_at")
        )
        yield GaugeMetricFamily(
            "imagegen_webhook_deliveries_pending", "Webhook deliveries not yet delivered nor given up.",
            value=pending["count"] or 0,
        )
        oldest = pending["oldest"]
        yield GaugeMetricFamily(
            "imagegen_webhook_oldest_pending_seconds", "Age of the oldest pending delivery (0: none).",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
        )
