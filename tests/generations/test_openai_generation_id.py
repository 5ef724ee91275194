"""The OpenAI-compatible endpoints name the generation they created (`X-Generation-Id` and `id`) and pass on
OpenAI's `usage` object, through the official `openai` SDK against a live server."""

import io

import openai
import pytest
from PIL import Image

from accounts.services import SYSTEM
from generations.models import Generation, TenantReviewSetting
from generations.services.moderation import review_setting_save

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sdk(make_customer, background_forwarder, live_server):
    customer = make_customer()
    client = openai.OpenAI(api_key=customer.key.secret, base_url=f"{live_server.url}/v1", max_retries=0)
    yield customer, client
    client.close()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "olive").save(buffer, "PNG")
    return buffer.getvalue()


def test_generate_names_the_generation_and_reports_usage(sdk) -> None:
    customer, client = sdk
    raw = client.images.with_raw_response.generate(
        model="gpt-image-2", prompt="a lighthouse at dusk", size="1024x1024", quality="low"
    )
    result = raw.parse()
    generation = Generation.objects.get()
    assert raw.headers["x-generation-id"] == generation.public_id
    assert raw.http_response.json()["id"] == generation.public_id
    # The sandbox reports tokens for gpt-image models as OpenAI does; the SDK parses them into its Usage type.
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (5, 4160)
    assert result.usage.total_tokens == 4165 and result.usage.input_tokens_details.text_tokens == 5
    assert generation.usage["total_tokens"] == 4165
    native = customer.client.get(f"/v1/generations/{generation.public_id}").json()
    assert native["usage"] == generation.usage


def test_edit_names_the_generation(sdk) -> None:
    _customer, client = sdk
    raw = client.images.with_raw_response.edit(
        model="gpt-image-2", image=("in.png", png_bytes(), "image/png"), prompt="add a hat", size="1024x1024",
        quality="low",
    )
    generation = Generation.objects.get()
    assert generation.operation == "edit"
    assert raw.headers["x-generation-id"] == raw.http_response.json()["id"] == generation.public_id
    assert raw.parse().usage.output_tokens == 4160


def test_an_image_held_for_review_can_be_found_later(sdk) -> None:
    customer, client = sdk
    review_setting_save(
        setting=TenantReviewSetting(tenant=customer.tenant, mode=TenantReviewSetting.Mode.HOLD), actor=SYSTEM
    )
    raw = client.images.with_raw_response.generate(
        model="gpt-image-2", prompt="something to review", size="1024x1024", quality="low"
    )
    assert raw.parse().data == []
    generation_id = raw.headers["x-generation-id"]
    assert raw.http_response.json()["id"] == generation_id

    found = customer.client.get(f"/v1/generations/{generation_id}").json()
    assert found["status"] == "succeeded" and found["charged_usd"] == "0.007200"
    assert [(image["review_status"], image["url"]) for image in found["images"]] == [("pending", None)]


def test_a_failed_generation_still_names_itself(sdk) -> None:
    _customer, client = sdk
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="gpt-image-2", prompt="bad [fault:moderated]", size="1024x1024", quality="low")
    generation = Generation.objects.get()
    assert generation.status == "failed"
    assert refused.value.response.headers["x-generation-id"] == generation.public_id


def test_a_request_refused_before_submit_names_no_generation(sdk) -> None:
    _customer, client = sdk
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="gpt-image-2", prompt="x", size="17x17", quality="low")
    assert "x-generation-id" not in refused.value.response.headers
    assert not Generation.objects.exists()
