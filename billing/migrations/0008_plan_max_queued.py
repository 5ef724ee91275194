"""Issue 10: the plan's max_concurrent caps running generations (enforced at claim); max_queued bounds how many
more may wait. The default plan lets 100 wait."""

from django.db import migrations, models


def default_plan_queue(apps, schema_editor):
    apps.get_model("billing", "Plan").objects.filter(is_default=True, max_queued__isnull=True).update(max_queued=100)


class Migration(migrations.Migration):
    dependencies = [("billing", "0007_wallet_period_counters")]

    operations = [
        migrations.AlterField(
            model_name="plan",
            name="max_concurrent",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Generations running at once; more are accepted and wait in the queue.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="plan",
            name="max_queued",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Generations that may wait for a running slot; a submit beyond it is refused (429 queue_full).",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="tenantplan",
            name="max_queued",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(default_plan_queue, migrations.RunPython.noop),
    ]
