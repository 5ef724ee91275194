"""`/metrics`: Prometheus text that a real Prometheus parser reads, request counts by route, the database figures
(queue depth by plan, money held, webhook backlog, reaper age), and closed to anyone without the token."""

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.generations.support import LOW_SQUARE_PRICE_MICROS, customer_create, generation_post

pytestmark = pytest.mark.django_db


def _scrape(client: Client, **headers: str) -> dict[str, list]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    families = text_string_to_metric_families(response.content.decode())
    return {family.name: family.samples for family in families}


def _value(samples: list, **labels: str) -> float:
    matching = [s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) == 1, (labels, samples)
    return matching[0]


def test_metrics_show_requests_queue_money_and_backlog(settings) -> None:
    settings.METRICS_TOKEN = "scrape-secret"
    customer = customer_create("metrics")
    generation_post(customer)
    generation_post(customer)
    customer.client.get("/v1/generations/gen_doesnotexist")

    metrics = _scrape(Client(), HTTP_AUTHORIZATION="Bearer scrape-secret")

    requests = metrics["imagegen_http_requests"]
    assert _value(requests, method="POST", route="/v1/generations", status="202") >= 2
    # The pattern, never the id: one series however many generations there are.
    assert _value(requests, method="GET", route="/v1/generations/<id:generation_id>", status="404") >= 1
    assert _value(metrics["imagegen_generations_open"], status="queued", plan="default") == 2
    assert _value(metrics["imagegen_money_held_usd"]) == pytest.approx(2 * LOW_SQUARE_PRICE_MICROS / 1_000_000)
    assert _value(metrics["imagegen_holds_open"]) == 2
    assert _value(metrics["imagegen_queue_oldest_seconds"]) >= 0
    assert _value(metrics["imagegen_webhook_deliveries_pending"]) == 0
    assert "imagegen_reaper_age_seconds" in metrics
    assert "imagegen_http_request_duration_seconds" in metrics


def test_metrics_need_the_token_when_one_is_set(settings) -> None:
    settings.METRICS_TOKEN = "scrape-secret"
    assert Client().get("/metrics").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404


def test_without_a_token_only_loopback_may_scrape(settings) -> None:
    settings.METRICS_TOKEN = ""
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="203.0.113.7").get("/metrics").status_code == 404
