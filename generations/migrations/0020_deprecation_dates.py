"""Deprecation dates from the vendors' notices (generations/catalog/data/models.json `lifecycle.deprecated_at`) on
databases seeded before the file had them: 0010 and 0016 stamped their own run time, a date after the shutdown, so
`Deprecation` came after `Sunset`. A row is moved only to an earlier date: a deprecation staff dated before the
notice stays."""

import json
from pathlib import Path

from django.db import migrations
from django.utils.dateparse import parse_datetime

SEED_FILE = Path(__file__).resolve().parent.parent / "catalog" / "data" / "models.json"


def deprecation_dates(apps, schema_editor):
    CatalogModel = apps.get_model("generations", "CatalogModel")
    for entry in json.loads(SEED_FILE.read_text())["models"]:
        when = (entry.get("lifecycle") or {}).get("deprecated_at")
        if not when:
            continue
        when = parse_datetime(when)
        rows = CatalogModel.objects.filter(model_id=entry["id"]).exclude(status="active")
        rows.filter(deprecated_at__isnull=True).update(deprecated_at=when)
        rows.filter(deprecated_at__gt=when).update(deprecated_at=when)


class Migration(migrations.Migration):
    dependencies = [("generations", "0019_catalog_draft_status")]

    # Nothing to undo: the notice dates are the true ones.
    operations = [migrations.RunPython(deprecation_dates, migrations.RunPython.noop)]
