"""Scheduled billing work. `update_or_create` by name, so re-running migrations never duplicates a schedule.

Statements run daily rather than monthly: closing a month is idempotent, so a missed run (worker down on the 1st)
is caught up the next day instead of a month later.
"""

from datetime import UTC, datetime, timedelta

from django.db import migrations

SCHEDULES = {
    "billing-check": {"func": "billing.tasks.billing_check", "schedule_type": "H"},
    "billing-monthly-statements": {"func": "billing.tasks.statements_close", "schedule_type": "D"},
}


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    now = datetime.now(UTC)
    first_runs = {
        "billing-check": now + timedelta(minutes=5),
        "billing-monthly-statements": now.replace(hour=0, minute=15, second=0, microsecond=0)
        + timedelta(days=1),
    }
    for name, fields in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name, defaults={**fields, "repeats": -1, "next_run": first_runs[name]}
        )


def delete_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=SCHEDULES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_default_plan_and_known_prices"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedules, delete_schedules)]
