from django.contrib.auth.management import create_permissions
from django.db import migrations

from generations.staff_roles import staff_groups_sync


def sync_staff_groups(apps, schema_editor):
    # Billing may add token prices, Billing and Support see them: the permissions exist only after post_migrate
    # unless created here (as 0004 does).
    billing = apps.get_app_config("billing")
    billing.models_module = True
    create_permissions(billing, apps=apps, verbosity=0)
    billing.models_module = None
    staff_groups_sync(group_model=apps.get_model("auth", "Group"), permission_model=apps.get_model("auth", "Permission"))


class Migration(migrations.Migration):
    dependencies = [("generations", "0017_token_prices_seed")]

    operations = [migrations.RunPython(sync_staff_groups, migrations.RunPython.noop)]
