"""What the upstream actually charged: through the API, the forwarder and the sandbox over HTTP, a settlement books
the actual cost from the answer's token usage beside the price list's estimate; the staff report, its CSV and the
dashboard show estimate against actual, and `billing_check` warns when they drift apart."""

import csv
import io
from datetime import date

import pytest
from django.contrib.admin.utils import quote
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from structlog.testing import capture_logs

from accounts.models import User
from billing.models import LedgerEntry
from billing.money import micros_to_dollars
from billing.selectors.dashboard import money_by_period
from billing.tasks import billing_check as billing_check_task
from generations.forwarder import forward_drain

pytestmark = pytest.mark.django_db(transaction=True)

# gpt-image-2 token prices per 1M tokens (the catalog file, seeded by generations 0017): text in 5 USD, image in 8,
# image out 30. The sandbox answers "a lighthouse" (12 characters) with 3 text input tokens and 4160 image output
# tokens per image, so two images cost 3 × 5 + 8320 × 30 = 249 615 micro-USD, where the price list estimates
# 2 × 0.211 USD (high quality, 1024x1024) = 422 000.
GPT_IMAGE_2_ACTUAL = 3 * 5 + 2 * 4160 * 30
GPT_IMAGE_2_ESTIMATE = 2 * 211_000


@pytest.fixture
def customer(make_customer, forwarding):
    return make_customer()


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("staff@example.com", "pw-123456789"))
    return client


def finished(customer, body: dict) -> dict:
    response = customer.client.post("/v1/generations", body, format="json")
    assert response.status_code == 202, response.json()
    assert forward_drain().claimed == 1
    generation = customer.client.get(f"/v1/generations/{response.json()['id']}").json()
    assert generation["status"] == "succeeded", generation["error"]
    return generation


def capture_of(generation: dict) -> LedgerEntry:
    return LedgerEntry.objects.get(reference=generation["id"], kind="capture")


def test_a_gpt_image_2_settlement_books_the_actual_cost_from_its_token_usage(customer) -> None:
    generation = finished(customer, {"model": "gpt-image-2", "prompt": "a lighthouse", "quality": "high", "n": 2})

    assert generation["usage"]["output_tokens_details"] == {"image_tokens": 8320, "text_tokens": 0}
    capture = capture_of(generation)
    assert (capture.cost_micros, capture.upstream_cost_actual_micros) == (GPT_IMAGE_2_ESTIMATE, 249_615)
    assert GPT_IMAGE_2_ACTUAL == 249_615
    # The tenant still pays the price list: the actual cost is ours to know, not theirs to pay.
    assert customer.ledger(generation["id"]) == [("hold", 506_400), ("capture", 506_400)]
    assert "upstream_cost" not in str(generation) and "249615" not in str(generation)


def test_a_gemini_settlement_books_the_image_output_tokens(customer) -> None:
    # gemini-3.1-flash-image: image out 60 USD per 1M tokens; the sandbox draws a 1K image in 1120 image tokens
    # (beside 9 text tokens, which the published prices do not price).
    generation = finished(customer, {"model": "gemini-3.1-flash-image", "prompt": "a lighthouse", "size": "1K"})

    assert generation["usage"]["output_tokens_details"] == {"image_tokens": 1120, "text_tokens": 9}
    capture = capture_of(generation)
    assert (capture.cost_micros, capture.upstream_cost_actual_micros) == (67_000, 1120 * 60)


def test_an_answer_without_usage_leaves_the_actual_cost_unknown(customer) -> None:
    generation = finished(customer, {"model": "doubao-seedream-5.0-lite", "prompt": "a lighthouse"})

    assert generation["usage"] is None
    capture = capture_of(generation)
    assert (capture.cost_micros, capture.upstream_cost_actual_micros) == (35_000, None)


def test_the_report_csv_and_dashboard_show_estimate_against_actual_with_its_coverage(customer, staff_client) -> None:
    finished(customer, {"model": "gpt-image-2", "prompt": "a lighthouse", "quality": "high", "n": 2})
    finished(customer, {"model": "doubao-seedream-5.0-lite", "prompt": "a lighthouse"})
    today = timezone.now().date()
    query = {"start": today.replace(day=1), "end": today, "group_by": "month_model"}

    page = staff_client.get("/admin/billing/ledgerentry/report/", query)
    assert page.status_code == 200
    rows = {row.group[1]: row for row in page.context["rows"]}
    assert {row.group[0] for row in page.context["rows"]} == {today.replace(day=1)}
    gpt = rows["openai/gpt-image-2"]
    assert (gpt.images, gpt.actual_images, gpt.cost_micros, gpt.actual_cost_micros) == (
        2, 2, GPT_IMAGE_2_ESTIMATE, GPT_IMAGE_2_ACTUAL
    )
    assert gpt.actual_drift_percent == -40.8
    seedream = rows["doubao/doubao-seedream-5.0-lite"]
    assert (seedream.actual_images, seedream.actual_drift_percent) == (0, None)
    html = page.content.decode()
    assert micros_to_dollars(GPT_IMAGE_2_ACTUAL) in html and micros_to_dollars(GPT_IMAGE_2_ESTIMATE) in html
    assert "known for 2 of 2 images" in html and "known for 0 of 1 images" in html and "-40.8%" in html
    assert "known for 2 of 3 images" in html  # the totals row

    export = staff_client.get("/admin/billing/ledgerentry/report/", {**query, "export": "csv"})
    table = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert table[0][-4:] == ["actual_images", "actual_cost_usd", "actual_estimate_usd", "actual_drift_percent"]
    by_model = {line[1]: line for line in table[1:]}
    month = date(today.year, today.month, 1).isoformat()
    assert by_model["openai/gpt-image-2"][0] == month
    assert by_model["openai/gpt-image-2"][-4:] == ["2", "0.249615", "0.422000", "-40.8"]
    assert by_model["doubao/doubao-seedream-5.0-lite"][-4:] == ["0", "", "", ""]  # unknown is not zero

    capture = LedgerEntry.objects.get(kind="capture", model_id="openai/gpt-image-2")
    entry_page = staff_client.get(f"/admin/billing/ledgerentry/{quote(capture.pk)}/change/").content.decode()
    assert "actual upstream cost" in entry_page.lower() and micros_to_dollars(GPT_IMAGE_2_ACTUAL) in entry_page

    today_money = money_by_period(tenant=None, now=timezone.now())["today"]
    assert (today_money.images, today_money.actual_images, today_money.actual_cost_micros) == (3, 2, GPT_IMAGE_2_ACTUAL)
    dashboard = staff_client.get("/admin/").content.decode()
    assert "Upstream cost (actual, where known)" in dashboard and "known for 2 of 3 images" in dashboard


def test_billing_check_warns_about_the_drift_without_failing(customer, settings, capsys) -> None:
    finished(customer, {"model": "gpt-image-2", "prompt": "a lighthouse", "quality": "high", "n": 2})
    settings.UPSTREAM_COST_DRIFT_MIN_IMAGES = 2

    call_command("billing_check")  # no CommandError: the books add up

    out, err = capsys.readouterr()
    assert "OK, every wallet matches its ledger" in out
    month = timezone.now().strftime("%Y-%m")
    assert err.strip() == (
        f"WARNING upstream cost drift: openai/gpt-image-2 {month}: actual upstream cost 249615 micro-USD vs"
        f" estimate 422000 over 2 images (-40.8%)"
    )

    # The hourly check logs it as a warning and counts no wallet drift.
    with capture_logs() as logs:
        assert billing_check_task() == 0
    [logged] = [entry for entry in logs if entry["event"] == "billing.upstream_cost_drift"]
    assert (logged["log_level"], logged["model"], logged["actual_micros"], logged["estimate_micros"]) == (
        "warning", "openai/gpt-image-2", GPT_IMAGE_2_ACTUAL, GPT_IMAGE_2_ESTIMATE
    )

    settings.UPSTREAM_COST_DRIFT_MIN_IMAGES = 3  # too few images to judge
    call_command("billing_check")
    assert capsys.readouterr().err == ""
