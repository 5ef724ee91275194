"""Outputs are only accepted as verified PNG/JPEG/WEBP images within the byte and pixel limits."""

import base64
import hashlib
import io

import pytest
from PIL import Image
from pytest_httpserver import HTTPServer

from generations.images import InvalidOutput
from generations.providers import RawOutput
from tests.generations.images_support import materialize


def image_bytes(image_format: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image_format", "content_type", "extension"),
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp")],
)
def test_a_base64_image_is_decoded_and_described(
    image_format: str, content_type: str, extension: str
) -> None:
    data = image_bytes(image_format)

    image = materialize(RawOutput(url=None, b64_json=base64.b64encode(data).decode()))

    assert (image.content_type, image.extension, image.width, image.height) == (
        content_type,
        extension,
        64,
        48,
    )
    assert (image.byte_size, image.read_all()) == (len(data), data)
    assert image.sha256 == hashlib.sha256(data).hexdigest()


def test_a_url_image_is_downloaded(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/out.png").respond_with_data(image_bytes("PNG"), content_type="image/png")
    assert materialize(RawOutput(url=httpserver.url_for("/out.png"), b64_json=None)).width == 64


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<html>hello</html>", "output_not_image"),
        (image_bytes("PNG")[:60], "output_not_image"),
        (image_bytes("GIF"), "output_unsupported_format"),
        (image_bytes("PNG", (2000, 1000)), "output_dimensions_too_large"),
    ],
    ids=["html", "truncated-png", "gif", "too-many-pixels"],
)
def test_non_images_and_oversized_images_are_refused(httpserver: HTTPServer, body: bytes, code: str) -> None:
    httpserver.expect_request("/out").respond_with_data(body)
    for raw in (
        RawOutput(url=httpserver.url_for("/out"), b64_json=None),
        RawOutput(url=None, b64_json=base64.b64encode(body).decode()),
    ):
        with pytest.raises(InvalidOutput) as caught:
            materialize(raw)
        assert caught.value.code == code


def test_loopback_urls_are_refused_unless_allowed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/out.png").respond_with_data(image_bytes("PNG"))
    with pytest.raises(InvalidOutput) as caught:
        materialize(RawOutput(url=httpserver.url_for("/out.png"), b64_json=None), allow_private=False)
    assert caught.value.code == "output_unsafe_url"


def test_byte_caps_apply_to_urls_and_base64(httpserver: HTTPServer) -> None:
    data = image_bytes("PNG", (400, 400))
    httpserver.expect_request("/big.png").respond_with_data(data)
    for raw in (
        RawOutput(url=httpserver.url_for("/big.png"), b64_json=None),
        RawOutput(url=None, b64_json=base64.b64encode(data).decode()),
    ):
        with pytest.raises(InvalidOutput) as caught:
            materialize(raw, max_bytes=len(data) - 1)
        assert caught.value.code == "output_too_large"


def test_an_error_status_garbage_base64_or_no_output_are_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/gone").respond_with_data("gone", status=404)
    cases = [
        (RawOutput(url=httpserver.url_for("/gone"), b64_json=None), "output_fetch_failed"),
        (RawOutput(url=None, b64_json="not base64!"), "output_invalid_base64"),
        (RawOutput(url=None, b64_json=None), "output_missing"),
    ]
    for raw, code in cases:
        with pytest.raises(InvalidOutput) as caught:
            materialize(raw)
        assert caught.value.code == code
