"""The sandbox's images: real files of the size and format asked for, different bytes for every prompt, and the
prompt recorded in the file (the picture itself is drawn once per size and colour, see `render`)."""

import base64
import hashlib
import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from aihubmix_sandbox.server import SandboxHandle

AUTH = {"Authorization": "Bearer sk-sandbox-test"}


def _generate(sandbox: SandboxHandle, prompt: str, **extra: str) -> bytes:
    response = httpx.post(
        f"{sandbox.base_url}/images/generations",
        headers=AUTH,
        timeout=30,
        json={"model": "gpt-image-2", "prompt": prompt, "size": "512x384", **extra},
    )
    assert response.status_code == 200
    return base64.b64decode(response.json()["data"][0]["b64_json"])


@pytest.mark.slow  # forty 512×384 images
def test_every_prompt_gets_its_own_complete_png_with_the_prompt_in_it(aihubmix_sandbox: SandboxHandle) -> None:
    with ThreadPoolExecutor(max_workers=20) as pool:
        images = list(pool.map(lambda i: _generate(aihubmix_sandbox, f"a fox number {i}"), range(40)))

    assert len({hashlib.sha256(data).hexdigest() for data in images}) == 40
    for index, data in enumerate(images):
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # a complete, uncorrupted file (chunk CRCs included)
            assert (image.format, image.size) == ("PNG", (512, 384))
            assert image.text["Description"] == f"a fox number {index} #1"


def test_jpeg_outputs_carry_the_prompt_as_a_comment(aihubmix_sandbox: SandboxHandle) -> None:
    first, second = (_generate(aihubmix_sandbox, prompt, output_format="jpeg") for prompt in ("owl", "newt"))

    assert first != second
    with Image.open(io.BytesIO(second)) as image:
        image.load()
        assert (image.format, image.size, image.info["comment"]) == ("JPEG", (512, 384), b"newt #1")
