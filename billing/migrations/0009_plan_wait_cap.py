"""Issue 10: cap the clients a tenant may have waiting on a result at once; the default plan allows 8."""

from django.db import migrations, models


def default_plan_waits(apps, schema_editor):
    apps.get_model("billing", "Plan").objects.filter(is_default=True, max_concurrent_waits__isnull=True).update(
        max_concurrent_waits=8
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_plan_max_queued")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="max_concurrent_waits",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Clients waiting on a result at once (Prefer: wait, /v1/images/*); beyond it the native "
                "API answers 202 without waiting and /v1/images/* answers 429.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="tenantplan",
            name="max_concurrent_waits",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(default_plan_waits, migrations.RunPython.noop),
    ]
