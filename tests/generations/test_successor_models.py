"""The vendors' successor models through the real stack — API → forwarder → sandbox over HTTP → storage on disk →
ledger — at the published prices the catalog ships (the default plan adds 20 %): gpt-image-2 with its token
usage, both Gemini image models on their own route (a safety block fails with a clear code and is refunded) and
Seedream 5.0 lite; and the OpenAI-compatible endpoint serving them too."""

import base64
import hashlib
import importlib
import io
import json
from pathlib import Path

import openai
import pytest
from django.apps import apps
from django.conf import settings
from PIL import Image

from accounts.services import SYSTEM
from billing.models import Price
from billing.services.prices import price_set
from generations.forwarder import forward_drain
from generations.models import CatalogModel, Generation

pytestmark = pytest.mark.django_db(transaction=True)

CREDIT = 50_000_000


def _png(size: tuple[int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (20, 120, 60)).save(buffer, format="PNG")
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"


@pytest.fixture
def customer(make_customer, forwarding):
    return make_customer()


def finished(customer, body: dict) -> dict:
    response = customer.client.post("/v1/generations", body, format="json")
    assert response.status_code == 202, response.json()
    assert forward_drain().claimed == 1
    return customer.client.get(f"/v1/generations/{response.json()['id']}").json()


def assert_stored(generation: dict) -> list[tuple[int, int]]:
    """Every image is on disk as the API describes it; their sizes."""
    row = Generation.objects.get(public_id=generation["id"])
    for image in generation["images"]:
        data = (Path(settings.MEDIA_ROOT) / row.images.get(index=image["index"]).storage_key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == image["sha256"] and len(data) == image["bytes"]
    return [(image["width"], image["height"]) for image in generation["images"]]


# --- gpt-image-2 ------------------------------------------------------------------------------------------


def test_gpt_image_2_generates_keeps_its_token_usage_and_captures_the_published_price(customer, forwarding) -> None:
    generation = finished(customer, {"model": "gpt-image-2", "prompt": "a lighthouse", "quality": "high"})

    assert generation["status"] == "succeeded", generation["error"]
    assert assert_stored(generation) == [(1024, 1024)]
    # Published: 0.211 USD for a high-quality 1024x1024 image.
    assert generation["charged_usd"] == "0.253200"
    assert customer.ledger(generation["id"]) == [("hold", 253_200), ("capture", 253_200)]
    assert Generation.objects.get(public_id=generation["id"]).upstream_cost_micros == 211_000
    assert generation["usage"] == {
        "input_tokens": 3, "output_tokens": 4160, "total_tokens": 4163,
        "input_tokens_details": {"text_tokens": 3, "image_tokens": 0},
        "output_tokens_details": {"image_tokens": 4160, "text_tokens": 0},
    }
    assert forwarding.calls["model:openai/gpt-image-2"] == 1


def test_gpt_image_2_edits_keep_their_usage_too(customer, forwarding) -> None:
    generation = finished(
        customer,
        {"model": "gpt-image-2", "prompt": "make it night", "quality": "low", "size": "1536x1024",
         "input_images": [_png((96, 64))]},
    )

    assert generation["status"] == "succeeded", generation["error"]
    assert assert_stored(generation) == [(1536, 1024)]
    assert customer.ledger(generation["id"]) == [("hold", 6_000), ("capture", 6_000)]
    assert generation["usage"]["input_tokens_details"] == {"text_tokens": 3, "image_tokens": 1024}
    assert generation["usage"]["output_tokens_details"] == {"image_tokens": 4160, "text_tokens": 0}
    assert forwarding.calls["images.edits"] == 1


def test_gpt_image_2_custom_sizes_need_a_staff_price(customer, forwarding) -> None:
    body = {"model": "gpt-image-2", "prompt": "a lighthouse", "size": "1920x1088", "quality": "medium"}

    refused = customer.client.post("/v1/generations", body, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "model_not_priced"

    price_set(model_id="openai/gpt-image-2", quality="medium", size="*", cost_micros=100_000, actor=SYSTEM)
    generation = finished(customer, body)
    assert generation["status"] == "succeeded" and assert_stored(generation) == [(1920, 1088)]
    assert customer.ledger(generation["id"]) == [("hold", 120_000), ("capture", 120_000)]


# --- Gemini -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "price_2k"), [("gemini-3.1-flash-image", 101_000), ("gemini-3-pro-image", 134_000)])
def test_gemini_generates_at_the_asked_ratio_and_resolution_and_keeps_its_usage(
    customer, forwarding, model, price_2k
) -> None:
    generation = finished(customer, {"model": model, "prompt": "a lighthouse", "size": "16:9-2K"})

    assert generation["status"] == "succeeded", generation["error"]
    assert generation["model"] == f"google/{model}"
    assert assert_stored(generation) == [(2752, 1536)]
    assert generation["images"][0]["content_type"] == "image/jpeg"
    charged = price_2k * 12 // 10
    assert customer.ledger(generation["id"]) == [("hold", charged), ("capture", charged)]
    usage = generation["usage"]
    assert usage["input_tokens"] == 3
    assert usage["output_tokens_details"]["image_tokens"] == 1120
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert forwarding.calls["family:gemini"] == 1


@pytest.mark.parametrize(("model", "price_1k"), [("gemini-3.1-flash-image", 67_000), ("gemini-3-pro-image", 134_000)])
def test_gemini_edits_an_input_image_keeping_its_aspect_ratio(customer, forwarding, model, price_1k) -> None:
    generation = finished(customer, {"model": model, "prompt": "make it night", "input_images": [_png((96, 64))]})

    assert generation["status"] == "succeeded", generation["error"]
    assert generation["size"] == "1K"
    assert assert_stored(generation) == [(1248, 832)]
    charged = price_1k * 12 // 10
    assert customer.ledger(generation["id"]) == [("hold", charged), ("capture", charged)]
    assert generation["usage"]["input_tokens_details"] == {"text_tokens": 3, "image_tokens": 560}


@pytest.mark.parametrize(
    ("model", "marker", "code", "says"),
    [
        ("gemini-3.1-flash-image", "[fault:moderated]", "content_policy_violation", "IMAGE_SAFETY"),
        ("gemini-3-pro-image", "[fault:moderated]", "content_policy_violation", "IMAGE_SAFETY"),
        ("gemini-3-pro-image", "[fault:prompt-blocked]", "content_policy_violation", "PROHIBITED_CONTENT"),
        ("gemini-3.1-flash-image", "[fault:no-image]", "upstream_no_image", "I will not draw it"),
    ],
)
def test_a_gemini_answer_without_an_image_fails_with_a_clear_code_and_is_refunded(
    customer, forwarding, model, marker, code, says
) -> None:
    generation = finished(customer, {"model": model, "prompt": f"a lighthouse {marker}"})

    assert generation["status"] == "failed"
    assert generation["error"]["code"] == code and says in generation["error"]["message"]
    assert generation["images"] == [] and generation["images_returned"] == 0
    (hold, release) = customer.ledger(generation["id"])
    assert hold[0] == "hold" and release == ("release", hold[1])
    wallet = customer.wallet()
    assert (wallet.balance_micros, wallet.held_micros) == (CREDIT, 0)
    # Sent once, never again: the upstream answered.
    assert forwarding.calls["family:gemini"] == 1
    row = Generation.objects.get(public_id=generation["id"])
    if code == "upstream_no_image":
        kept = json.loads(row.upstream_response)
        signature = kept["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
        assert signature.startswith("<") and signature.endswith(" chars>")


# --- Seedream 5.0 lite ------------------------------------------------------------------------------------


def test_seedream_5_lite_makes_a_group_downloaded_from_its_urls(customer, forwarding) -> None:
    generation = finished(customer, {"model": "doubao-seedream-5.0-lite", "prompt": "a lighthouse", "n": 2})

    assert generation["status"] == "succeeded", generation["error"]
    assert assert_stored(generation) == [(2048, 2048), (2048, 2048)]
    assert customer.ledger(generation["id"]) == [("hold", 84_000), ("capture", 84_000)]
    assert generation["usage"] is None
    assert forwarding.calls["files"] == 2


# --- The OpenAI-compatible endpoint -----------------------------------------------------------------------


@pytest.fixture
def sdk(make_customer, background_forwarder, live_server):
    customer = make_customer()
    client = openai.OpenAI(api_key=customer.key.secret, base_url=f"{live_server.url}/v1", max_retries=0)
    yield customer, client
    client.close()


def test_the_openai_sdk_generates_with_gpt_image_2_and_gets_its_usage(sdk) -> None:
    customer, client = sdk
    raw = client.images.with_raw_response.generate(
        model="gpt-image-2", prompt="a red bicycle", size="1536x1024", quality="medium",
        extra_body={"background": "opaque", "output_format": "png"},
    )

    result = raw.parse()
    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert image.size == (1536, 1024)
    assert result.usage.output_tokens == 4160
    assert raw.http_response.json()["usage"]["output_tokens_details"] == {"image_tokens": 4160, "text_tokens": 0}
    generation = Generation.objects.get()
    assert generation.model_id == "openai/gpt-image-2" and generation.params == {"background": "opaque",
                                                                                 "output_format": "png"}
    assert customer.wallet().balance_micros == CREDIT - 49_200


def test_the_openai_sdk_generates_with_a_gemini_model(sdk) -> None:
    customer, client = sdk
    result = client.images.generate(
        model="gemini-3.1-flash-image", prompt="a red bicycle", size="9:16", response_format="b64_json"
    )

    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert image.size == (768, 1376)
    assert customer.wallet().balance_micros == CREDIT - 80_400


def test_an_openai_request_without_a_model_runs_on_gpt_image_2_not_the_retired_gpt_image_1(sdk) -> None:
    _, client = sdk
    result = client.images.generate(prompt="a red bicycle", size="1024x1024", quality="low")

    assert len(result.data) == 1 and result.data[0].b64_json
    assert Generation.objects.get().model_id == "openai/gpt-image-2"


# --- Existing databases -----------------------------------------------------------------------------------


SUCCESSORS = importlib.import_module("generations.migrations.0014_successor_models")


def test_the_migration_adds_the_successors_to_a_database_without_them_keeping_staff_prices(db) -> None:
    Price.objects.filter(model_id__in=SUCCESSORS.SUCCESSORS).delete()
    # Set while the catalog had the model (prices of unknown models are refused), kept after it lost the row.
    staff = price_set(model_id="openai/gpt-image-2", quality="*", size="*", cost_micros=99_000, actor=SYSTEM)
    CatalogModel.objects.filter(replacement__model_id__in=SUCCESSORS.SUCCESSORS).update(replacement=None)
    CatalogModel.objects.filter(model_id__in=SUCCESSORS.SUCCESSORS).delete()

    SUCCESSORS.successors_add(apps, None)

    rows = {row.model_id: row for row in CatalogModel.objects.filter(model_id__in=SUCCESSORS.SUCCESSORS)}
    assert set(rows) == set(SUCCESSORS.SUCCESSORS)
    assert (rows["google/gemini-3-pro-image"].family, rows["google/gemini-3-pro-image"].status) == ("gemini", "active")
    assert list(Price.objects.filter(model_id="openai/gpt-image-2")) == [staff]
    flash = {price.size: price.cost_micros for price in Price.objects.filter(model_id="google/gemini-3.1-flash-image")}
    assert len(flash) == 33 and (flash["1K"], flash["16:9-2K"], flash["21:9-4K"]) == (67_000, 101_000, 151_000)
    assert [(p.quality, p.size, p.cost_micros) for p in Price.objects.filter(
        model_id="doubao/doubao-seedream-5.0-lite")] == [("*", "*", 35_000)]

    # Again, after staff changed a row: nothing doubled, nothing overwritten.
    CatalogModel.objects.filter(model_id="google/gemini-3-pro-image").update(display_name="Nano Banana Pro")
    SUCCESSORS.successors_add(apps, None)
    assert CatalogModel.objects.filter(model_id__in=SUCCESSORS.SUCCESSORS).count() == 4
    assert CatalogModel.objects.get(model_id="google/gemini-3-pro-image").display_name == "Nano Banana Pro"
    assert Price.objects.filter(model_id="google/gemini-3.1-flash-image").count() == 33
