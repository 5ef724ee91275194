"""The retention period (plan field, overridable per tenant) purges old generations' files on a django-q2 schedule."""

import importlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule, Task
from django_q.scheduler import scheduler

from accounts.services import SYSTEM
from billing.models import Plan, TenantPlan
from billing.services.plans import plan_assign, tenant_plan_save
from generations.forwarder import forward_drain
from generations.models import Generation
from tests.generations.support import LOW_SQUARE, Customer

PURGE = "generations.tasks.purge_expired_files"
SCHEDULE_MIGRATION = "generations.migrations.0007_retention_purge_schedule"


def finished(customer: Customer, *, days_ago: int) -> Generation:
    created = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "keep?"}, format="json")
    assert created.status_code == 202
    forward_drain()
    generation = Generation.objects.get(public_id=created.json()["id"])
    assert generation.status == "succeeded"
    Generation.objects.filter(pk=generation.pk).update(finished_at=timezone.now() - timedelta(days=days_ago))
    return generation


def files_exist(generation: Generation, media_root: str) -> bool:
    return all((Path(media_root) / image.storage_key).is_file() for image in generation.images.all())


def override(customer: Customer, *, retention_days: int) -> None:
    assignment = TenantPlan.objects.filter(tenant=customer.tenant).first() or plan_assign(
        tenant=customer.tenant, plan=Plan.objects.get_or_create(name="no-retention")[0], actor=SYSTEM
    )
    assignment.retention_days = retention_days
    tenant_plan_save(tenant_plan=assignment, actor=SYSTEM)


def run_the_schedule(monkeypatch) -> None:
    """What the django-q2 cluster does when the hourly schedule comes due. Transactional tests start from an empty
    database, so the schedule is created by the data migration's own function first."""
    importlib.import_module(SCHEDULE_MIGRATION).create_schedule(django_apps, None)
    monkeypatch.setattr(Conf, "SYNC", True)
    Schedule.objects.exclude(func=PURGE).update(next_run=timezone.now() + timedelta(days=1))
    Schedule.objects.filter(func=PURGE).update(next_run=timezone.now() - timedelta(seconds=1))
    scheduler()


@pytest.mark.django_db
def test_the_purge_is_scheduled_hourly_by_a_migration() -> None:
    schedule = Schedule.objects.get(func=PURGE)
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.HOURLY, -1)


@pytest.mark.slow  # five generations and the scheduler
@pytest.mark.django_db(transaction=True)
def test_files_older_than_the_retention_period_are_purged(make_customer, forwarding, settings, monkeypatch) -> None:
    month_plan = Plan.objects.create(name="thirty-days", markup_bps=2000, max_n=10, retention_days=30)
    on_plan = make_customer("on-plan", plan=month_plan)
    kept_by_override = make_customer("keeps-all", plan=month_plan)
    override(kept_by_override, retention_days=0)  # 0: keep until deleted, whatever the plan says
    week_override = make_customer("one-week")  # a plan without retention, with a 7-day override
    override(week_override, retention_days=7)
    no_retention = make_customer("forever")

    old = finished(on_plan, days_ago=31)
    recent = finished(on_plan, days_ago=29)
    overridden_old = finished(kept_by_override, days_ago=400)
    week_old = finished(week_override, days_ago=8)
    ancient = finished(no_retention, days_ago=3650)
    ledger_before = on_plan.ledger(old.public_id)
    assert all(files_exist(g, settings.MEDIA_ROOT) for g in (old, recent, overridden_old, week_old, ancient))

    run_the_schedule(monkeypatch)

    assert Task.objects.filter(func=PURGE, success=True, result="generations=2 files=2").exists()
    assert not files_exist(old, settings.MEDIA_ROOT) and not files_exist(week_old, settings.MEDIA_ROOT)
    assert files_exist(recent, settings.MEDIA_ROOT)
    assert files_exist(overridden_old, settings.MEDIA_ROOT) and files_exist(ancient, settings.MEDIA_ROOT)

    gone = on_plan.client.get(f"/v1/generations/{old.public_id}/images/0")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "gone"
    body = on_plan.client.get(f"/v1/generations/{old.public_id}").json()
    assert body["files_deleted_at"] is not None and body["images"][0]["url"] is None
    assert body["charged_usd"] == "0.007200" and on_plan.ledger(old.public_id) == ledger_before
    assert on_plan.client.get(f"/v1/generations/{recent.public_id}/images/0").status_code == 200
    assert no_retention.client.get(f"/v1/generations/{ancient.public_id}/images/0").status_code == 200

    # The quota endpoint tells each tenant its period.
    assert on_plan.client.get("/v1/quota").json()["retention_days"] == 30
    assert kept_by_override.client.get("/v1/quota").json()["retention_days"] is None
    assert week_override.client.get("/v1/quota").json()["retention_days"] == 7
    assert no_retention.client.get("/v1/quota").json()["retention_days"] is None
