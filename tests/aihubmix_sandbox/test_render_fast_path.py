"""The sandbox's fast path for heavy answers gives byte for byte what the plain encoding gives."""

import base64
import json

import pytest
from PIL import Image

from aihubmix_sandbox import render


@pytest.fixture(params=[0, 3_000_000], ids=["as-drawn", "gpt-image-2-weight"])
def answer_bytes(request):
    render.answer_bytes_set(request.param)
    yield request.param
    render.answer_bytes_set(0)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP"])
def test_base64_equals_the_encoded_file(answer_bytes, image_format):
    for prompt in ("a", "b", "a prompt with ünïcode", "x" * 5000):
        fast = render.image_render_base64(
            prompt=prompt, model="gpt-image-2", width=1024, height=1024, index=1, image_format=image_format
        )
        plain = render.image_render(
            prompt=prompt, model="gpt-image-2", width=1024, height=1024, index=1, image_format=image_format
        )
        assert fast == base64.b64encode(plain).decode()
    with Image.open(__import__("io").BytesIO(base64.b64decode(fast))) as image:
        image.load()
        assert image.size == (1024, 1024)
    if answer_bytes and image_format == "PNG":
        assert len(fast) >= answer_bytes * 0.9


def test_json_bytes_splices_base64_and_nothing_else():
    image = render.Base64Text(base64.b64encode(b"\x00\xff" * 1000).decode())
    # A prompt echoed back that looks like a placeholder stays as it was.
    payload = {"data": [{"b64_json": image}, {"b64_json": image}], "prompt": '"@@base64-0@@" -0 \\ "',
               "n": (1, 2)}
    assert json.loads(render.json_bytes(payload)) == json.loads(json.dumps(payload))
