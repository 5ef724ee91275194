"""Seed the catalog rows and the published prices from the shipped file, generations/catalog/data/models.json.

Models the file leaves unpriced get no Price row: they stay unbillable until staff set one (admin or
`manage.py set_price`), or `bootstrap_demo` prices them for the local sandbox.

The only seed of the catalog: the test suite runs `seed` again, with the current models, after a transactional
test has flushed the rows.
"""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from django.db import migrations
from django.utils import timezone
from django.utils.dateparse import parse_datetime

SEED_FILE = Path(__file__).resolve().parent.parent / "catalog" / "data" / "models.json"
# The same start as billing 0003's seeded prices, so rows it already made are found, not doubled.
PRICES_FROM = datetime(2025, 1, 1, tzinfo=UTC)
COLUMNS = ("id", "alias", "display_name", "description", "family", "edit_family", "operations")


def deprecated_at(lifecycle):
    """The vendor's notice date from the file (else its shutdown date, else now): never the seed's own run time,
    which may fall after the Sunset."""
    for key in ("deprecated_at", "shutdown_at"):
        if lifecycle.get(key):
            return parse_datetime(lifecycle[key])
    return timezone.now()


def seed(apps, schema_editor):
    CatalogModel = apps.get_model("generations", "CatalogModel")
    Price = apps.get_model("billing", "Price")
    entries = json.loads(SEED_FILE.read_text())["models"]
    rows = {}
    for entry in entries:
        lifecycle = entry.get("lifecycle") or {}
        rules = {key: value for key, value in entry.items() if key not in (*COLUMNS, "lifecycle", "pricing")}
        status = lifecycle.get("status", "active")
        rows[entry["id"]] = CatalogModel.objects.update_or_create(
            model_id=entry["id"],
            defaults={
                "alias": entry["alias"],
                "display_name": entry["display_name"],
                "description": entry.get("description", ""),
                "family": entry["family"],
                "edit_family": entry.get("edit_family", ""),
                "operations": entry["operations"],
                "rules": rules,
                "status": status,
                "deprecated_at": deprecated_at(lifecycle) if status != "active" else None,
                "shutdown_at": parse_datetime(lifecycle["shutdown_at"]) if lifecycle.get("shutdown_at") else None,
                "notes": "\n".join(entry.get("notes", [])),
            },
        )[0]
        pricing = entry.get("pricing") or {}
        for price in pricing.get("prices", []):
            note = "; ".join(filter(None, [pricing.get("source"), price.get("note")]))[:200]
            Price.objects.get_or_create(
                model_id=entry["id"],
                quality=price["quality"],
                size=price["size"],
                effective_from=PRICES_FROM,
                defaults={"cost_micros": int(Decimal(price["usd"]) * 1_000_000), "note": note},
            )
    for entry in entries:
        lifecycle = entry.get("lifecycle") or {}
        if lifecycle.get("replacement"):
            row = rows[entry["id"]]
            row.replacement = rows[lifecycle["replacement"]]
            row.serve_with_replacement = bool(lifecycle.get("serve_with_replacement"))
            row.save(update_fields=["replacement", "serve_with_replacement"])


def unseed(apps, schema_editor):
    apps.get_model("generations", "CatalogModel").objects.update(replacement=None, serve_with_replacement=False)
    apps.get_model("generations", "CatalogModel").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0009_catalog_models"),
        ("billing", "0003_default_plan_and_known_prices"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
