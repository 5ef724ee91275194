"""Input images for edits: uploads, base64 data URLs or https URLs, each verified like an output image."""

import asyncio
import binascii
import logging
import re
import time

import pybase64
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from generations.images import InvalidOutput, VerifiedImage, image_verify
from project import errors
from project.safe_http import FetchFailed, ResponseTooLarge, SafeHttpError, UnsafeTarget, safe_get

logger = logging.getLogger(__name__)

MAX_INPUT_IMAGES = 16
_DATA_URL = re.compile(r"^data:(?P<type>image/[a-z0-9.+-]+)?(;[a-z0-9=-]+)*;base64,(?P<data>.*)$", re.IGNORECASE | re.DOTALL)


class InvalidInputImage(errors.InvalidRequest):
    code = "invalid_input_image"


_FETCH_REFUSALS: dict[type[SafeHttpError], str] = {
    UnsafeTarget: "The image URL must point to a public host.",
    ResponseTooLarge: "The image at this URL is too large.",
    FetchFailed: "Could not fetch the image: the host did not answer in time or refused the connection.",
    SafeHttpError: "Could not fetch the image.",
}


def _decode_data_url(value: str, *, param: str) -> bytes:
    match = _DATA_URL.match(value)
    if match is None:
        raise InvalidInputImage("Expected a base64 data URL (data:image/png;base64,...) or an https URL.", param=param)
    encoded = match.group("data").strip()
    if len(encoded) > settings.INPUT_IMAGE_MAX_BYTES * 4 // 3 + 4:
        raise InvalidInputImage("The image is too large.", code="input_image_too_large", param=param)
    try:
        return pybase64.b64decode(encoded, validate=True)  # SIMD: generations/images.py says why
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputImage("The data URL is not valid base64.", param=param) from exc


def _fetch_url(url: str, *, param: str, deadline_seconds: float) -> bytes:
    allow_private = settings.OUTPUT_FETCH_ALLOW_PRIVATE
    if not url.startswith("https://") and not (allow_private and url.startswith("http://")):
        raise InvalidInputImage("Image URLs must use https.", param=param)
    try:
        response = asyncio.run(
            safe_get(
                url,
                max_bytes=settings.INPUT_IMAGE_MAX_BYTES,
                deadline_seconds=deadline_seconds,
                allow_private=allow_private,
            )
        )
    except SafeHttpError as exc:
        # The details (resolved addresses, connection errors) go to the log, not to the caller.
        logger.info("input image fetch refused", extra={"url": url[:200], "reason": str(exc)})
        message = next(text for klass, text in _FETCH_REFUSALS.items() if isinstance(exc, klass))
        raise InvalidInputImage(message, code="input_image_unreachable", param=param) from exc
    if response.status_code != 200:
        raise InvalidInputImage(
            f"Fetching the image answered HTTP {response.status_code}.", code="input_image_unreachable", param=param
        )
    return response.content


def _read_upload(upload: UploadedFile, *, param: str) -> bytes:
    if upload.size is not None and upload.size > settings.INPUT_IMAGE_MAX_BYTES:
        raise InvalidInputImage("The image is too large.", code="input_image_too_large", param=param)
    return upload.read()


def input_image_load(
    source: str | UploadedFile, *, param: str, fetch_deadline_seconds: float | None = None
) -> VerifiedImage:
    if isinstance(source, UploadedFile):
        data = _read_upload(source, param=param)
    elif source.startswith(("https://", "http://")):
        budget = settings.INPUT_FETCH_BUDGET_SECONDS if fetch_deadline_seconds is None else fetch_deadline_seconds
        if budget <= 0:
            raise InvalidInputImage(
                "Fetching the input images took too long.", code="input_image_unreachable", param=param
            )
        data = _fetch_url(source, param=param, deadline_seconds=budget)
    else:
        data = _decode_data_url(source, param=param)
    if len(data) > settings.INPUT_IMAGE_MAX_BYTES:
        raise InvalidInputImage("The image is too large.", code="input_image_too_large", param=param)
    try:
        return image_verify(data, max_pixels=settings.OUTPUT_MAX_PIXELS)
    except InvalidOutput as exc:
        raise InvalidInputImage(f"Not a usable image: {exc.message}.", param=param) from exc


def input_images_load(sources: list[str | UploadedFile], *, field: str = "input_images") -> list[VerifiedImage]:
    """Load and verify every input image. URL fetches share one time budget and all images one byte budget, so a
    single request cannot tie up a web worker for long or fill its memory."""
    if len(sources) > MAX_INPUT_IMAGES:
        raise InvalidInputImage(f"At most {MAX_INPUT_IMAGES} input images.", param=field)
    deadline = time.monotonic() + settings.INPUT_FETCH_BUDGET_SECONDS
    images: list[VerifiedImage] = []
    total_bytes = 0
    for index, source in enumerate(sources):
        param = f"{field}[{index}]"
        image = input_image_load(source, param=param, fetch_deadline_seconds=deadline - time.monotonic())
        total_bytes += image.byte_size
        if total_bytes > settings.INPUT_IMAGES_MAX_TOTAL_BYTES:
            raise InvalidInputImage("The input images are too large together.", code="input_image_too_large",
                                    param=param)
        images.append(image)
    return images
