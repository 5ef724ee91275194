"""The default plan and the upstream prices published by AIHubMix (shared/aihubmix/NOTES.md, USD per image).

Models without a published price are deliberately not seeded: they stay unbillable until staff set a price
(admin, or `manage.py set_price`).
"""

from datetime import UTC, datetime

from django.db import migrations

# A plain constant module, shared with the plan rule (billing.selectors.limits), so the default plan is written once.
from billing.defaults import DEFAULT_PLAN_VALUES


GPT_IMAGE_1 = {
    ("low", "1024x1024"): 11_000,
    ("low", "1024x1536"): 16_000,
    ("low", "1536x1024"): 16_000,
    ("medium", "1024x1024"): 42_000,
    ("medium", "1024x1536"): 63_000,
    ("medium", "1536x1024"): 63_000,
    ("high", "1024x1024"): 167_000,
    ("high", "1024x1536"): 250_000,
    ("high", "1536x1024"): 250_000,
}

FLAT = {
    "google/imagen-4.0-ultra-generate-001": 60_000,
    "google/imagen-4.0-generate-001": 40_000,
    "google/imagen-4.0-fast-generate-001": 20_000,
}
# google/imagen-3.0-generate-002 (0.03 USD) was seeded here too, but the catalog never had it: a price for a model
# no request can use. Fresh databases no longer get it; generations 0021 ends it on the others.

SEEDED_FROM = datetime(2025, 1, 1, tzinfo=UTC)
NOTE = "AIHubMix public price (seeded)"


def seed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    Price = apps.get_model("billing", "Price")
    Plan.objects.update_or_create(name=DEFAULT_PLAN_VALUES["name"], defaults=DEFAULT_PLAN_VALUES)
    for (quality, size), cost in GPT_IMAGE_1.items():
        Price.objects.get_or_create(
            model_id="openai/gpt-image-1",
            quality=quality,
            size=size,
            effective_from=SEEDED_FROM,
            defaults={"cost_micros": cost, "note": NOTE},
        )
    for model_id, cost in FLAT.items():
        Price.objects.get_or_create(
            model_id=model_id,
            quality="*",
            size="*",
            effective_from=SEEDED_FROM,
            defaults={"cost_micros": cost, "note": NOTE},
        )


def unseed(apps, schema_editor):
    Price = apps.get_model("billing", "Price")
    Price.objects.filter(effective_from=SEEDED_FROM, note=NOTE).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_ledger_append_only_trigger")]

    operations = [migrations.RunPython(seed, unseed)]
