"""What the upstream receives, recorded by the sandbox, for requests sent through our native API: each of the nine
curl examples on the provider's page (../shared/aihubmix/image-api-docs.zh.txt) with the same values, every edit
family, async polling and FLUX.1-Kontext-pro's one-step answer.

Bodies are compared whole: every field the page's example sends is there with its value, and nothing else is.
"""

import base64

import pytest

from accounts.services import SYSTEM
from billing.services.prices import price_set
from generations.forwarder import forward_drain
from generations.models import Generation
from tests.generations.images_support import BLUE_URL, RED, RED_URL

pytestmark = pytest.mark.django_db(transaction=True)

DEER = (
    "A deer drinking in the lake, Sakura petals falling, green and clean water, japanese temple, dappled sunlight,"
    " cinematic lighting, expansive view, peace"
)


@pytest.fixture
def customer(make_customer, forwarding):
    customer = make_customer()
    return customer


def run(customer, sandbox, model_id: str, body: dict) -> tuple[dict, list]:
    """Price the model, submit through POST /v1/generations, drain the forwarder; the final generation and what
    the sandbox received."""
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


# model id, our native request, the page's path, the page's body (as the upstream must receive it)
PAGE_EXAMPLES = [
    (
        "bailian/wan2.7-image-pro",
        {"model": "wan2.7-image-pro", "prompt": "一座古色古香的中国风小桥,水墨画风格", "n": 1, "size": "1024x1024",
         "seed": 42, "params": {"thinking_mode": True}},
        "/v1/images/generations",
        {"model": "wan2.7-image-pro", "prompt": "一座古色古香的中国风小桥,水墨画风格", "n": 1, "size": "1024x1024",
         "thinking_mode": True, "seed": 42},
    ),
    (
        "openai/glm-image",
        {"model": "openai/glm-image", "prompt": DEER, "size": "1024x1024", "quality": "hd"},
        "/v1/models/openai/glm-image/predictions",
        {"input": {"prompt": DEER, "size": "1024x1024", "quality": "hd"}},
    ),
    (
        "doubao/doubao-seedream-4-0",
        {"model": "doubao/doubao-seedream-4-0", "prompt": "星际穿越,黑洞", "size": "2K",
         "params": {"watermark": True, "response_format": "url"}},
        "/v1/models/doubao/doubao-seedream-4-0/predictions",
        {"input": {"prompt": "星际穿越,黑洞", "size": "2K", "sequential_image_generation": "disabled",
                   "stream": False, "response_format": "url", "watermark": True}},
    ),
    (
        "bfl/FLUX-1.1-pro",
        {"model": "bfl/FLUX-1.1-pro", "prompt": DEER, "size": "1024x1024", "seed": 1,
         "params": {"output_format": "jpeg", "prompt_upsampling": True, "safety_tolerance": 6}},
        "/v1/models/bfl/FLUX-1.1-pro/predictions",
        {"input": {"prompt": DEER, "size": "1024x1024", "output_format": "jpeg",
                   "extra_body": {"prompt_upsampling": True, "safety_tolerance": 6, "seed": 1}}},
    ),
    (
        "bfl/flux-kontext-max",
        {"model": "bfl/flux-kontext-max", "prompt": DEER + ". reference style as the given image:", "size": "2:3",
         "params": {"safety_tolerance": 6}},
        "/v1/models/bfl/flux-kontext-max/predictions",
        {"input": {"prompt": DEER + ". reference style as the given image:", "aspect_ratio": "2:3",
                   "safety_tolerance": 6}},
    ),
    (
        "ideogram/V3",
        {"model": "ideogram/V3", "prompt": DEER + ", in the style of Pixar 3D", "quality": "QUALITY", "size": "2x1"},
        "/v1/models/ideogram/V3/predictions",
        {"input": {"prompt": DEER + ", in the style of Pixar 3D", "rendering_speed": "QUALITY", "aspect_ratio": "2x1"}},
    ),
    (
        # The page's example sends `"refer_image": ""`; a generation has no reference, so nothing is sent for it.
        "qianfan/irag-1.0",
        {"model": "qianfan/irag-1.0", "prompt": "A beautiful sunset over a calm ocean", "n": 1, "size": "1024x1024",
         "params": {"guidance": 7.5, "watermark": False}},
        "/v1/models/qianfan/irag-1.0/predictions",
        {"input": {"prompt": "A beautiful sunset over a calm ocean", "n": 1, "size": "1024x1024", "guidance": 7.5,
                   "watermark": False}},
    ),
]


@pytest.mark.parametrize(("model_id", "ours", "path", "page_body"), PAGE_EXAMPLES, ids=[e[0] for e in PAGE_EXAMPLES])
def test_each_page_example_reaches_the_upstream_exactly(customer, forwarding, model_id, ours, path, page_body) -> None:
    generation, requests = run(customer, forwarding, model_id, ours)

    assert generation["status"] == "succeeded", generation["error"]
    post = only_post(requests)
    assert post.path == path
    assert post.json == page_body
    assert generation["model"] == model_id and generation["images_returned"] >= 1


def test_the_async_example_is_polled_on_the_tasks_route_until_ready(customer, forwarding) -> None:
    forwarding.latency = 0.2
    generation, requests = run(customer, forwarding, "bfl/flux-kontext-max", next(example[1] for example in PAGE_EXAMPLES if example[0] == "bfl/flux-kontext-max"))

    post, *polls = requests
    task_id = Generation.objects.get(public_id=generation["id"]).upstream_task_id
    assert generation["status"] == "succeeded" and task_id.startswith("api.sbx.")
    assert post.path == "/v1/models/bfl/flux-kontext-max/predictions"
    assert polls and {(poll.method, poll.path) for poll in polls} == {("GET", f"/v1/tasks/{task_id}")}


def test_kontext_pro_answers_in_one_step_one_post_and_succeeded(customer, forwarding) -> None:
    generation, requests = run(
        customer, forwarding, "bfl/FLUX.1-Kontext-pro",
        {"model": "flux-kontext-pro", "prompt": "a lighthouse", "size": "16:9", "params": {"raw": True}},
    )

    assert generation["status"] == "succeeded" and generation["images_returned"] == 1
    assert [(request.method, request.path) for request in requests] == [
        ("POST", "/v1/models/bfl/FLUX.1-Kontext-pro/predictions")
    ]
    assert requests[0].json == {"input": {"prompt": "a lighthouse", "aspect_ratio": "16:9", "raw": True}}
    assert Generation.objects.get(public_id=generation["id"]).attempts == 1


# --- Edits, one per family ------------------------------------------------------------------------------


def test_openai_edits_go_as_multipart_with_every_image(customer, forwarding) -> None:
    generation, requests = run(
        customer, forwarding, "openai/gpt-image-2",
        {"model": "gpt-image-2", "prompt": "make it blue", "input_images": [RED_URL, BLUE_URL],
         "quality": "low", "params": {"background": "opaque"}},
    )

    post = only_post(requests)
    assert generation["status"] == "succeeded"
    assert post.path == "/v1/images/edits" and post.files == ("image[]", "image[]")
    assert post.form == {"model": "gpt-image-2", "prompt": "make it blue", "n": "1", "size": "1024x1024",
                         "quality": "low", "background": "opaque"}


@pytest.mark.parametrize("model", ["qwen-image-edit-plus", "wan2.7-image"])
def test_alibaba_edits_use_the_native_interface_with_input_images(customer, forwarding, model) -> None:
    generation, requests = run(
        customer, forwarding, f"bailian/{model}",
        {"model": model, "prompt": "把桥换成红色", "input_images": [RED_URL, BLUE_URL], "size": "1024x1024"},
    )

    post = only_post(requests)
    assert generation["status"] == "succeeded"
    assert post.path == f"/v1/models/bailian/{model}/predictions"
    assert post.json == {"input": {"prompt": "把桥换成红色", "n": 1, "size": "1024*1024", "images": [RED_URL, BLUE_URL]}}


def test_wan27_colour_palette_and_group_mode_go_native(customer, forwarding) -> None:
    palette = [{"hex": "#C2D1E6", "ratio": "40%"}, {"hex": "#636574", "ratio": "30%"}, {"hex": "#F4F1EA", "ratio": "30%"}]
    generation, requests = run(
        customer, forwarding, "bailian/wan2.7-image-pro",
        {"model": "wan2.7-image-pro", "prompt": "a bridge", "n": 3, "params": {"color_palette": palette}},
    )

    post = only_post(requests)
    assert generation["status"] == "succeeded" and generation["images_returned"] == 3
    assert post.path == "/v1/models/bailian/wan2.7-image-pro/predictions"
    assert post.json == {"input": {"prompt": "a bridge", "n": 3, "size": "2K", "color_palette": palette}}


def test_seedream_edits_send_reference_images_as_image(customer, forwarding) -> None:
    generation, requests = run(
        customer, forwarding, "doubao/doubao-seedream-4-0",
        {"model": "doubao-seedream-4-0", "prompt": "merge them", "input_images": [RED_URL, BLUE_URL]},
    )

    body = only_post(requests).json["input"]
    assert generation["status"] == "succeeded"
    assert body["image"] == [RED_URL, BLUE_URL] and "images" not in body


def test_irag_edits_send_refer_image(customer, forwarding) -> None:
    generation, requests = run(
        customer, forwarding, "qianfan/irag-1.0",
        {"model": "irag-1.0", "prompt": "make it night", "input_images": [RED_URL]},
    )

    assert generation["status"] == "succeeded"
    assert only_post(requests).json["input"]["refer_image"] == RED_URL


@pytest.mark.parametrize("model", ["bfl/flux-kontext-max", "bfl/FLUX.1-Kontext-pro"])
def test_flux_kontext_edits_send_the_reference_as_image(customer, forwarding, model) -> None:
    generation, requests = run(
        customer, forwarding, model, {"model": model, "prompt": "make it blue", "input_images": [RED_URL]}
    )

    body = only_post(requests).json["input"]
    assert generation["status"] == "succeeded"
    assert body["image"] == base64.b64encode(RED).decode() and "input_image" not in body
