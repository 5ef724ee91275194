"""A generation canceled while running is charged the upstream cost on its own statement line; only delivered
images count as images, so images × unit price = amount holds on the model's line (API, CSV and HTML)."""

import csv
import io

import pytest
from django.utils import timezone

from billing.services.statements import statement_close
from generations.forwarder import forward_drain
from generations.models import Generation
from generations.services.cancel import generation_settle_canceled
from generations.services.leases import generation_claim_batch
from tests.generations.support import LOW_SQUARE, LOW_SQUARE_PRICE_MICROS

pytestmark = pytest.mark.django_db(transaction=True)
LOW_SQUARE_COST_MICROS = 6_000


def test_canceled_while_running_charges_get_their_own_statement_line(make_customer, forwarding, roomy_plan) -> None:
    customer = make_customer(plan=roomy_plan)
    delivered = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "ten", "n": 10}, format="json")
    assert delivered.status_code == 202
    forward_drain()
    assert Generation.objects.get(public_id=delivered.json()["id"]).images_returned == 10

    # Another one is running (claimed by a worker) when the tenant cancels it; the upstream produced one image.
    canceled = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "stop"}, format="json").json()
    [claim] = generation_claim_batch(limit=1, lease_seconds=60)
    assert customer.client.post(f"/v1/generations/{canceled['id']}/cancel").json()["cancel_requested"] is True
    generation_settle_canceled(claim=claim, images_returned=1)
    row = Generation.objects.get(public_id=canceled["id"])
    assert (row.status, row.charged_micros, row.images_returned) == ("canceled", LOW_SQUARE_COST_MICROS, 0)
    assert customer.ledger(canceled["id"])[-1] == ("capture", LOW_SQUARE_COST_MICROS)

    statement = statement_close(tenant=customer.tenant, period_start=timezone.now().date())
    body = customer.client.get(f"/v1/statements/{statement.pk}").json()
    model_line, canceled_line = body["lines"]
    assert model_line == {
        "model": "openai/gpt-image-2", "quality": "low", "size": "1024x1024", "charge": "images", "images": 10,
        "unit_price_usd": "0.007200", "amount_usd": "0.072000",
    }
    assert canceled_line == {
        "model": "openai/gpt-image-2", "quality": "low", "size": "1024x1024", "charge": "canceled", "images": 0,
        "unit_price_usd": "0.000000", "amount_usd": "0.006000",
    }
    assert 10 * LOW_SQUARE_PRICE_MICROS == 72_000  # 10 × 0.0072 = 0.072 on the model's line
    assert (body["images"], body["charges_usd"]) == (10, "0.078000")

    rows = list(csv.reader(io.StringIO(customer.client.get(f"/v1/statements/{statement.pk}.csv").content.decode())))
    assert rows == [
        ["model", "quality", "size", "charge", "images", "unit_price_usd", "amount_usd"],
        ["openai/gpt-image-2", "low", "1024x1024", "images", "10", "0.007200", "0.072000"],
        ["openai/gpt-image-2", "low", "1024x1024", "canceled", "0", "", "0.006000"],
        ["total", "", "", "", "10", "", "0.078000"],
    ]

    html = customer.client.get(f"/v1/statements/{statement.pk}.html").content.decode()
    assert "Canceled while running (upstream cost)" in html and "Images delivered" in html
    # Pages show dollars ($0.072), the CSV above keeps six decimals.
    assert html.count("$0.072<") == 1 and "$0.006<" in html and "$0.078<" in html

    # Quotas count delivered images only.
    quota = {line["name"]: line for line in customer.client.get("/v1/quota").json()["limits"]}
    assert quota["images_per_day"]["used"] == 10 and quota["images_per_month"]["used"] == 10
