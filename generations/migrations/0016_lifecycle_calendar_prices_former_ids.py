"""Today's catalog on databases seeded before it (generations/catalog/data/models.json):

- the models the vendors shut down (gpt-image-1 2026-10-23, gpt-image-1.5 2026-12-01, Imagen 4 2026-08-17) are
  retired with their shutdown date and replacement (the calendar would retire them anyway: the date is what counts);
- every id a model was published under before is kept as `former_ids` (bfl/flux-kontext-pro);
- every model the file prices gets its published prices, but only when it has no price row at all: a price staff
  set (billing's price_set), even a `*` one the published rows would outrank, is kept.

`catalog_refresh` is also what the test suite runs after the 0010 seed when a transactional test flushed the rows.
"""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from django.db import migrations, models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

SEED_FILE = Path(__file__).resolve().parent.parent / "catalog" / "data" / "models.json"
# The same start as 0010_catalog_seed's published prices.
PRICES_FROM = datetime(2025, 1, 1, tzinfo=UTC)


def catalog_refresh(apps, schema_editor):
    CatalogModel = apps.get_model("generations", "CatalogModel")
    Price = apps.get_model("billing", "Price")
    entries = json.loads(SEED_FILE.read_text())["models"]
    rows = {row.model_id: row for row in CatalogModel.objects.all()}
    for entry in entries:
        row = rows.get(entry["id"])
        if row is None:
            continue
        lifecycle = entry.get("lifecycle") or {}
        former = [name for name in lifecycle.get("former_ids", []) if name not in (row.former_ids or [])]
        if former:
            row.former_ids = [*(row.former_ids or []), *former]
        if lifecycle.get("status") == "retired" and row.status != "retired":
            row.status = "retired"
            row.deprecated_at = row.deprecated_at or parse_datetime(
                lifecycle.get("deprecated_at") or lifecycle.get("shutdown_at") or timezone.now().isoformat()
            )
            row.shutdown_at = parse_datetime(lifecycle["shutdown_at"]) if lifecycle.get("shutdown_at") else None
            replacement = rows.get(lifecycle.get("replacement") or "")
            if replacement is not None and row.replacement_id is None:
                row.replacement = replacement
        row.save()
    priced = set(Price.objects.values_list("model_id", flat=True).distinct())
    new_prices = []
    for entry in entries:
        if entry["id"] not in rows or entry["id"] in priced:
            continue
        pricing = entry.get("pricing") or {}
        new_prices += [
            Price(
                model_id=entry["id"],
                quality=price["quality"],
                size=price["size"],
                effective_from=PRICES_FROM,
                cost_micros=int(Decimal(price["usd"]) * 1_000_000),
                note="; ".join(filter(None, [pricing.get("source"), price.get("note")]))[:200],
            )
            for price in pricing.get("prices", [])
        ]
    Price.objects.bulk_create(new_prices)


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0015_generation_deadline_at"),
        ("billing", "0003_default_plan_and_known_prices"),
    ]

    operations = [
        migrations.AddField(
            model_name="catalogmodel",
            name="former_ids",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Ids this model was published under before (still accepted, e.g. bfl/flux-kontext-pro).",
            ),
        ),
        # Nothing to undo: the prices stay (they may have been charged against since), and so do the retirements.
        migrations.RunPython(catalog_refresh, migrations.RunPython.noop),
    ]
