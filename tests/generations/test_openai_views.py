"""The official `openai` SDK against a live server of ours: generate, edit, and errors as SDK exceptions."""

import base64
import io

import openai
import pytest
from PIL import Image

from generations.models import Generation
from tests.generations.support import LOW_SQUARE_PRICE_MICROS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sdk(make_customer, background_forwarder, live_server):
    customer = make_customer()
    client = openai.OpenAI(api_key=customer.key.secret, base_url=f"{live_server.url}/v1", max_retries=0)
    yield customer, client
    client.close()  # a kept-alive connection would hold a live-server thread and its database session


def png_bytes(color: str = "navy") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, "PNG")
    return buffer.getvalue()


def test_sdk_generate_returns_b64_images_and_charges(sdk) -> None:
    customer, client = sdk
    result = client.images.generate(
        model="gpt-image-2", prompt="a red bicycle", size="1024x1024", quality="low", n=2,
        response_format="b64_json",
    )
    assert len(result.data) == 2
    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert image.size == (1024, 1024)
    assert customer.wallet().balance_micros == 50_000_000 - 2 * LOW_SQUARE_PRICE_MICROS
    assert Generation.objects.get().model_id == "openai/gpt-image-2"


def test_sdk_generate_with_url_response_format(sdk) -> None:
    import httpx

    _, client = sdk
    result = client.images.generate(model="gpt-image-2", prompt="a kite", size="1024x1024", quality="low",
                                    response_format="url")
    assert httpx.get(result.data[0].url, timeout=10).status_code == 200


def test_sdk_edit_with_an_uploaded_image(sdk) -> None:
    customer, client = sdk
    result = client.images.edit(
        model="gpt-image-2", image=("input.png", png_bytes(), "image/png"), prompt="add a hat",
        size="1024x1024", quality="low",
    )
    assert len(result.data) == 1 and result.data[0].b64_json
    generation = Generation.objects.get()
    assert generation.operation == "edit" and generation.input_images.count() == 1
    assert customer.ledger(generation.public_id) == [("hold", 7_200), ("capture", 7_200)]


def test_sdk_edit_with_several_images_sends_image_brackets_and_uses_them_all(sdk) -> None:
    """The SDK sends a list of images as repeated `image[]` parts (as `curl -F "image[]=@in.png"` does)."""
    customer, client = sdk
    result = client.images.edit(
        model="gpt-image-2", image=[("a.png", png_bytes("red"), "image/png"), ("b.png", png_bytes("blue"), "image/png")],
        prompt="put them side by side", size="1024x1024", quality="low",
    )
    assert len(result.data) == 1 and result.data[0].b64_json
    generation = Generation.objects.get()
    assert generation.operation == "edit"
    assert [(image.role, image.width) for image in generation.input_images.order_by("index")] == [
        ("image", 64), ("image", 64)]
    assert customer.ledger(generation.public_id) == [("hold", 7_200), ("capture", 7_200)]


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK marks create_variation deprecated
def test_sdk_create_variation_is_an_sdk_not_found_error(sdk) -> None:
    """We have no variations endpoint: the SDK must still get OpenAI's error shape to raise its own class."""
    customer, client = sdk
    with pytest.raises(openai.NotFoundError) as not_found:
        client.images.create_variation(image=("in.png", png_bytes(), "image/png"), n=1)
    error = not_found.value.body
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "not_found", None)
    assert error["message"]
    assert customer.wallet().held_micros == 0 and not Generation.objects.exists()


def test_sdk_raises_its_error_classes(sdk, live_server) -> None:
    customer, client = sdk
    with pytest.raises(openai.BadRequestError) as bad_request:
        client.images.generate(model="gpt-image-2", prompt="x", size="17x17", quality="low")
    error = bad_request.value.body
    assert (error["code"], error["param"]) == ("unsupported_size", "size")
    assert bad_request.value.status_code == 400 and error["type"] == "invalid_request_error"

    with (
        openai.OpenAI(api_key="nope.nope", base_url=f"{live_server.url}/v1", max_retries=0) as stranger,
        pytest.raises(openai.AuthenticationError),
    ):
        stranger.images.generate(model="gpt-image-2", prompt="x")

    with pytest.raises(openai.BadRequestError) as blocked:
        client.images.generate(model="gpt-image-2", prompt="bad [fault:moderated]", size="1024x1024", quality="low")
    assert blocked.value.body["code"] == "content_policy_violation"
    assert customer.wallet().balance_micros == 50_000_000 and customer.wallet().held_micros == 0
