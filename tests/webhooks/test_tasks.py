import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule, Task
from django_q.scheduler import scheduler
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook

from accounts.models import Tenant
from tests.webhooks.conftest import received
from webhooks.models import WebhookDelivery
from webhooks.services.delivery import webhook_deliveries_claim_due
from webhooks.services.publishing import webhook_event_publish
from webhooks.tasks import deliver_due_webhooks

SWEEP = "webhooks.tasks.deliver_due_webhooks"


def publish(tenant: Tenant, index: int = 0) -> WebhookDelivery:
    event = webhook_event_publish(
        tenant=tenant, event_type="generation.succeeded", data={"id": f"gen_{index}"}
    )
    return WebhookDelivery.objects.filter(event=event).first()


@pytest.mark.django_db
def test_the_sweep_is_scheduled_every_minute_by_a_migration() -> None:
    schedule = Schedule.objects.get(func=SWEEP)
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


@pytest.mark.django_db
def test_the_scheduled_sweep_delivers_an_event_whose_wake_up_was_lost(
    tenant: Tenant, make_endpoint, receiver: HTTPServer, q_sync: None
) -> None:
    """The event's own task never ran (on_commit callbacks are not run here); the django-q2 scheduler's sweep sends it."""
    receiver.expect_request("/hook").respond_with_data("ok")
    endpoint = make_endpoint(tenant)
    delivery = publish(tenant)
    Schedule.objects.exclude(func=SWEEP).update(next_run=timezone.now() + timedelta(days=1))
    Schedule.objects.filter(func=SWEEP).update(next_run=timezone.now() - timedelta(seconds=1))

    scheduler()

    [request] = received(receiver)
    assert Webhook(endpoint.secret).verify(request.get_data(), dict(request.headers))["data"] == {
        "id": "gen_0"
    }
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
    assert Task.objects.filter(func=SWEEP, success=True, result=1).exists()
    assert Task.objects.filter(func="webhooks.tasks.send_webhook_attempt", success=True).count() == 1
    assert Schedule.objects.get(func=SWEEP).next_run > timezone.now()


@pytest.mark.django_db
def test_the_sweep_sends_only_due_retries(
    tenant: Tenant, make_endpoint, receiver: HTTPServer, q_sync: None
) -> None:
    receiver.expect_request("/hook").respond_with_data("ok")
    make_endpoint(tenant)
    due = publish(tenant, 1)
    later = publish(tenant, 2)
    WebhookDelivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))

    assert deliver_due_webhooks() == 1

    assert [request.get_json()["data"]["id"] for request in received(receiver)] == ["gen_1"]
    due.refresh_from_db()
    later.refresh_from_db()
    assert (due.status, later.status, later.attempts) == ("succeeded", "pending", 0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_never_claim_the_same_attempt(tenant: Tenant, make_endpoint) -> None:
    make_endpoint(tenant)
    make_endpoint(tenant, path="/other")
    for index in range(100):
        publish(tenant, index)
    claims: list[tuple[str, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def sweep() -> None:
        try:
            start.wait()
            while batch := webhook_deliveries_claim_due(limit=7):
                with lock:
                    claims.extend(batch)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(claims) == 200
    assert len({delivery_id for delivery_id, _attempt in claims}) == 200
    assert {attempt for _delivery_id, attempt in claims} == {1}
