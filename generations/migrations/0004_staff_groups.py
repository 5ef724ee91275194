from django.contrib.auth.management import create_permissions
from django.db import migrations

from generations.staff_roles import staff_groups_sync


def create_staff_groups(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    # Today's roles name models later migrations add (billing.TokenPrice: 0018 syncs again).
    staff_groups_sync(
        group_model=apps.get_model("auth", "Group"), permission_model=apps.get_model("auth", "Permission"), missing_ok=True
    )


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0003_moderation"),
        ("accounts", "0001_initial"),
        ("billing", "0004_schedules"),
        ("webhooks", "0002_deliver_due_webhooks_schedule"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_staff_groups, migrations.RunPython.noop)]
