from django.db import migrations

PURGE = "generations.tasks.purge_expired_files"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="generations-file-retention",
        defaults={"func": PURGE, "schedule_type": "H", "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="generations-file-retention").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0006_webhook_usage_file_deletion"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
