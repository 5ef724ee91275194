"""The vendors' successor models (gpt-image-2, the Gemini image models, Seedream 5.0 lite) and the Gemini request
family, for databases seeded before they were in generations/catalog/data/models.json.

A model that already has a catalog row (0010_catalog_seed reads the current file, so a fresh database has them
all; or staff added it by hand) is left as it is. Its published prices are added only when the model has no price
row at all: a price staff set, even a `*` one that the published, more specific rows would outrank, is kept.
"""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from django.db import migrations, models
from django.db.models.functions import Lower
from django.utils.dateparse import parse_datetime

SEED_FILE = Path(__file__).resolve().parent.parent / "catalog" / "data" / "models.json"
# The same start as 0010_catalog_seed's published prices.
PRICES_FROM = datetime(2025, 1, 1, tzinfo=UTC)
COLUMNS = ("id", "alias", "display_name", "description", "family", "edit_family", "operations")
SUCCESSORS = (
    "openai/gpt-image-2",
    "google/gemini-3.1-flash-image",
    "google/gemini-3-pro-image",
    "doubao/doubao-seedream-5.0-lite",
)
FAMILY_CHOICES = [
    ("openai_compat", "OpenAI-compatible (/images/generations, /images/edits)"),
    ("predictions", "Predictions (/models/<vendor>/<model>/predictions)"),
    ("async_task", "Async task (predictions, then /tasks/<id> polling)"),
    ("gemini", "Gemini (/gemini/v1beta/models/<model>:generateContent, x-goog-api-key)"),
]


def successors_add(apps, schema_editor):
    CatalogModel = apps.get_model("generations", "CatalogModel")
    Price = apps.get_model("billing", "Price")
    entries = [entry for entry in json.loads(SEED_FILE.read_text())["models"] if entry["id"] in SUCCESSORS]
    names = {
        name
        for pair in CatalogModel.objects.annotate(id_lower=Lower("model_id"), alias_lower=Lower("alias")).values_list(
            "id_lower", "alias_lower"
        )
        for name in pair
    }
    for entry in entries:
        if entry["id"].lower() not in names and entry["alias"].lower() not in names:
            lifecycle = entry.get("lifecycle") or {}
            CatalogModel.objects.create(
                model_id=entry["id"],
                alias=entry["alias"],
                display_name=entry["display_name"],
                description=entry.get("description", ""),
                family=entry["family"],
                edit_family=entry.get("edit_family", ""),
                operations=entry["operations"],
                rules={key: value for key, value in entry.items() if key not in (*COLUMNS, "lifecycle", "pricing")},
                status=lifecycle.get("status", "active"),
                shutdown_at=parse_datetime(lifecycle["shutdown_at"]) if lifecycle.get("shutdown_at") else None,
                notes="\n".join(entry.get("notes", [])),
            )
        if Price.objects.filter(model_id=entry["id"]).exists():
            continue
        pricing = entry.get("pricing") or {}
        Price.objects.bulk_create(
            [
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
        )


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0013_submit_write_fewer_indexes"),
        ("billing", "0003_default_plan_and_known_prices"),
    ]

    operations = [
        migrations.AlterField(
            model_name="catalogmodel",
            name="edit_family",
            field=models.CharField(
                blank=True, choices=FAMILY_CHOICES, help_text="Interface used for edits; empty: the same.", max_length=16
            ),
        ),
        migrations.AlterField(
            model_name="catalogmodel",
            name="family",
            field=models.CharField(choices=FAMILY_CHOICES, help_text="Interface used for generations.", max_length=16),
        ),
        migrations.AlterField(
            model_name="generation",
            name="upstream_interface",
            field=models.CharField(
                blank=True,
                default="",
                help_text="openai_compat, predictions, async_task or gemini, chosen at submit.",
                max_length=16,
            ),
        ),
        # Nothing to undo: the rows and prices stay (a price may have been charged against since).
        migrations.RunPython(successors_add, migrations.RunPython.noop),
    ]
