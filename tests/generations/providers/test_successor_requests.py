"""What the upstream receives for the successor models (NOTES.md, "What the upstream serves now"), recorded by the
sandbox for requests sent through our native API: path, key header and the whole body — every field we mean to
send is there with its value, and nothing else is."""

import base64
import io

import pytest
from PIL import Image

from accounts.services import SYSTEM
from billing.services.prices import price_set
from generations.forwarder import forward_drain

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-sandbox-test"


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


RED, BLUE = _png((200, 30, 30)), _png((30, 30, 200))
RED_URL = f"data:image/png;base64,{base64.b64encode(RED).decode()}"
BLUE_URL = f"data:image/png;base64,{base64.b64encode(BLUE).decode()}"


@pytest.fixture
def customer(make_customer, forwarding):
    return make_customer()


def run(customer, sandbox, model_id: str, body: dict) -> tuple[dict, list]:
    """Submit through POST /v1/generations and drain the forwarder; the final generation and what the sandbox
    received. Custom sizes have no published price, so every model gets a `*` fallback here."""
    price_set(model_id=model_id, quality="*", size="*", cost_micros=10_000, actor=SYSTEM)
    sandbox.reset()
    response = customer.client.post("/v1/generations", body, format="json")
    assert response.status_code == 202, response.json()
    forward_drain()
    generation = customer.client.get(f"/v1/generations/{response.json()['id']}").json()
    return generation, sandbox.requests


def only_post(requests: list) -> object:
    posts = [request for request in requests if request.method == "POST"]
    assert len(posts) == 1, posts
    return posts[0]


def test_gpt_image_2_generates_on_its_predictions_route_with_every_extra(customer, forwarding) -> None:
    generation, requests = run(
        customer, forwarding, "openai/gpt-image-2",
        {"model": "gpt-image-2", "prompt": "a deer", "size": "1280x720", "quality": "high", "n": 2,
         "params": {"moderation": "low", "background": "opaque", "output_format": "webp", "output_compression": 80}},
    )

    post = only_post(requests)
    assert generation["status"] == "succeeded", generation["error"]
    assert post.path == "/v1/models/openai/gpt-image-2/predictions"
    assert post.headers["authorization"] == f"Bearer {KEY}" and "x-goog-api-key" not in post.headers
    assert post.json == {"input": {"prompt": "a deer", "n": 2, "size": "1280x720", "quality": "high",
                                   "background": "opaque", "output_format": "webp", "output_compression": 80,
                                   "moderation": "low"}}
    assert [(image["width"], image["height"]) for image in generation["images"]] == [(1280, 720)] * 2


@pytest.mark.parametrize("size", ["auto", "3840x2160"])
def test_gpt_image_2_sends_auto_and_large_sizes_as_given(customer, forwarding, size) -> None:
    generation, requests = run(
        customer, forwarding, "openai/gpt-image-2", {"model": "gpt-image-2", "prompt": "a deer", "size": size,
                                                     "quality": "low"},
    )

    assert generation["status"] == "succeeded", generation["error"]
    assert only_post(requests).json == {"input": {"prompt": "a deer", "n": 1, "size": size, "quality": "low"}}


def test_gpt_image_2_edits_go_as_multipart_to_the_openai_edit_route(customer, forwarding) -> None:
    generation, requests = run(
        customer, forwarding, "openai/gpt-image-2",
        {"model": "gpt-image-2", "prompt": "make it blue", "input_images": [RED_URL, BLUE_URL], "quality": "auto",
         "params": {"output_format": "jpeg", "output_compression": 50}},
    )

    post = only_post(requests)
    assert generation["status"] == "succeeded", generation["error"]
    assert post.path == "/v1/images/edits" and post.files == ("image[]", "image[]")
    assert post.headers["authorization"] == f"Bearer {KEY}"
    assert post.form == {"model": "gpt-image-2", "prompt": "make it blue", "n": "1", "size": "1024x1024",
                         "quality": "auto", "output_format": "jpeg", "output_compression": "50"}


def test_gpt_image_2_with_partial_images_streams_on_openais_generation_route_with_every_extra(
    customer, forwarding
) -> None:
    """NOTES.md: gpt-image-2 is reachable on /v1/images/generations and follows OpenAI's API there, `stream` and
    `partial_images` included; the partials are relayed, the completed image stored."""
    generation, requests = run(
        customer, forwarding, "openai/gpt-image-2",
        {"model": "gpt-image-2", "prompt": "a deer", "size": "1280x720", "quality": "high", "partial_images": 2,
         "params": {"moderation": "low", "background": "opaque", "output_format": "webp", "output_compression": 80}},
    )

    post = only_post(requests)
    assert generation["status"] == "succeeded", generation["error"]
    assert post.path == "/v1/images/generations" and post.headers["authorization"] == f"Bearer {KEY}"
    assert post.json == {"model": "gpt-image-2", "prompt": "a deer", "n": 1, "size": "1280x720", "quality": "high",
                         "background": "opaque", "output_format": "webp", "output_compression": 80,
                         "moderation": "low", "stream": True, "partial_images": 2}
    assert forwarding.calls["images.generations.stream"] == 1
    assert [(image["width"], image["height"]) for image in generation["images"]] == [(1280, 720)]
    assert generation["usage"]["output_tokens"] > 0


def test_gpt_image_2_edits_with_partial_images_stream_on_the_openai_edit_route(customer, forwarding) -> None:
    generation, requests = run(
        customer, forwarding, "openai/gpt-image-2",
        {"model": "gpt-image-2", "prompt": "make it blue", "input_images": [RED_URL], "quality": "low",
         "partial_images": 1},
    )

    post = only_post(requests)
    assert generation["status"] == "succeeded", generation["error"]
    assert post.path == "/v1/images/edits" and post.files == ("image",)
    assert post.form == {"model": "gpt-image-2", "prompt": "make it blue", "n": "1", "size": "1024x1024",
                         "quality": "low", "stream": "true", "partial_images": "1"}
    assert forwarding.calls["images.edits.stream"] == 1


@pytest.mark.parametrize("model", ["gemini-3.1-flash-image", "gemini-3-pro-image"])
def test_gemini_generates_on_its_own_route_with_the_goog_key_and_image_config(customer, forwarding, model) -> None:
    generation, requests = run(
        customer, forwarding, f"google/{model}", {"model": model, "prompt": "a deer", "size": "16:9-2K"}
    )

    post = only_post(requests)
    assert generation["status"] == "succeeded", generation["error"]
    assert post.path == f"/gemini/v1beta/models/{model}:generateContent"
    assert post.headers["x-goog-api-key"] == KEY and "authorization" not in post.headers
    assert post.headers["content-type"] == "application/json"
    assert post.json == {
        "contents": [{"role": "user", "parts": [{"text": "a deer"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                             "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"}},
    }
    assert [(image["width"], image["height"]) for image in generation["images"]] == [(2752, 1536)]


def test_gemini_edits_send_the_input_images_as_inline_data_parts(customer, forwarding) -> None:
    generation, requests = run(
        customer, forwarding, "google/gemini-3-pro-image",
        {"model": "gemini-3-pro-image", "prompt": "merge them", "input_images": [RED_URL, BLUE_URL], "size": "2K"},
    )

    assert generation["status"] == "succeeded", generation["error"]
    assert only_post(requests).json == {
        "contents": [{"role": "user", "parts": [
            {"text": "merge them"},
            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(RED).decode()}},
            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(BLUE).decode()}},
        ]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"imageSize": "2K"}},
    }


def test_seedream_5_is_called_like_seedream_4(customer, forwarding) -> None:
    generation, requests = run(
        customer, forwarding, "doubao/doubao-seedream-5.0-lite",
        {"model": "doubao-seedream-5.0-lite", "prompt": "星际穿越", "size": "2560x1440"},
    )

    post = only_post(requests)
    assert generation["status"] == "succeeded", generation["error"]
    assert post.path == "/v1/models/doubao/doubao-seedream-5.0-lite/predictions"
    assert post.json == {"input": {"prompt": "星际穿越", "size": "2560x1440", "sequential_image_generation": "disabled",
                                   "stream": False, "response_format": "url", "watermark": False}}
    assert [(image["width"], image["height"]) for image in generation["images"]] == [(2560, 1440)]


@pytest.mark.parametrize(
    ("model", "size"),
    [("doubao-seedream-5.0-lite", "1K"), ("doubao-seedream-5.0-lite", "4K"), ("doubao-seedream-5.0-lite", "1280x720"),
     ("gpt-image-2", "1000x1000"), ("gpt-image-2", "3840x1024"), ("gpt-image-2", "512x512")],
)
def test_sizes_outside_the_vendors_rules_are_refused_before_anything_is_sent(customer, forwarding, model, size) -> None:
    forwarding.reset()
    response = customer.client.post(
        "/v1/generations", {"model": model, "prompt": "a deer", "size": size}, format="json"
    )

    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("unsupported_size", "size")
    assert forwarding.requests == []
