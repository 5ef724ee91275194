from django.db import migrations

from generations.staff_roles import staff_groups_sync


def sync_staff_groups(apps, schema_editor):
    # The Billing role no longer reads generations (prompts and images are not its business).
    # Today's roles name models later migrations add (billing.TokenPrice: 0018 syncs again).
    staff_groups_sync(
        group_model=apps.get_model("auth", "Group"), permission_model=apps.get_model("auth", "Permission"), missing_ok=True
    )


class Migration(migrations.Migration):
    dependencies = [("generations", "0004_staff_groups")]

    operations = [migrations.RunPython(sync_staff_groups, migrations.RunPython.noop)]
