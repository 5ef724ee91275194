"""The token prices the catalog file publishes (`pricing.token_prices`, USD per 1M tokens) as billing's
`TokenPrice` rows, for models that have none yet (a row staff set is kept): from these, a settlement books the
actual upstream cost of an answer that reports token usage.

`token_prices_seed` is also what the test suite runs when a transactional test flushed the rows.
"""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from django.db import migrations

SEED_FILE = Path(__file__).resolve().parent.parent / "catalog" / "data" / "models.json"
PRICES_FROM = datetime(2025, 1, 1, tzinfo=UTC)  # the published per-image prices' start (0010, 0016)
# The file's names → TokenPrice's per-million fields.
KINDS = {
    "text_input": "text_input_micros",
    "image_input": "image_input_micros",
    "text_output": "text_output_micros",
    "image_output": "image_output_micros",
}


def token_prices_seed(apps, schema_editor):
    TokenPrice = apps.get_model("billing", "TokenPrice")
    priced = set(TokenPrice.objects.values_list("model_id", flat=True).distinct())
    rows = []
    for entry in json.loads(SEED_FILE.read_text())["models"]:
        prices = (entry.get("pricing") or {}).get("token_prices")
        if not prices or entry["id"] in priced:
            continue
        rows.append(
            TokenPrice(
                model_id=entry["id"],
                effective_from=PRICES_FROM,
                note=(prices.get("source") or "")[:200],
                **{field: int(Decimal(prices[name]) * 1_000_000) for name, field in KINDS.items() if name in prices},
            )
        )
    TokenPrice.objects.bulk_create(rows)


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0016_lifecycle_calendar_prices_former_ids"),
        ("billing", "0013_upstream_cost_actual"),
    ]

    # Nothing to undo: the rows may have priced settlements since.
    operations = [migrations.RunPython(token_prices_seed, migrations.RunPython.noop)]
