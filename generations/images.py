"""Image bytes we accept: what the upstream returned (a URL or base64) is fetched and verified before anything is
stored, and a client's input images pass the same `image_verify` before they are sent upstream."""

import asyncio
import binascii
import hashlib
import io
import tempfile
import warnings
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

import httpx
import pybase64
from PIL import Image

from generations.png import png_load_succeeds
from generations.providers import RawOutput
from project.safe_http import FetchFailed, ResponseTooLarge, UnsafeTarget, safe_get

ALLOWED_FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"), "WEBP": ("image/webp", "webp")}


class InvalidOutput(Exception):
    """An output we refuse to keep. `code` is stable: output_missing, output_unsafe_url, output_fetch_failed,
    output_too_large, output_invalid_base64, output_not_image, output_unsupported_format,
    output_dimensions_too_large."""

    def __init__(self, code: str, message: str, *, detail: str = "") -> None:
        # `message` is shown to tenants; `detail` (addresses, connection errors) only reaches the logs.
        super().__init__(f"{code}: {message}" + (f" ({detail})" if detail else ""))
        self.code = code
        self.message = message


@dataclass
class VerifiedImage:
    """A checked image. Input images carry their bytes in `data`; outputs are read from `file`: a downloaded one
    was spooled to a temporary file (on disk past OUTPUT_SPOOL_BYTES) as it arrived, a base64 one decoded in
    memory, where its answer already was (the forwarder's answer budget counts it until it is stored)."""

    data: bytes
    content_type: str
    extension: str
    width: int
    height: int
    sha256: str
    byte_size: int
    file: BinaryIO | None = None

    def read_all(self) -> bytes:
        if self.file is None:
            return self.data
        self.file.seek(0)
        return self.file.read()

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()


def _verify_bytes(data: bytes, *, max_pixels: int) -> tuple[str, int, int]:
    """Accept PNG, JPEG and WEBP only, refuse more than `max_pixels` before decoding, then decode fully (a
    truncated or corrupt file fails here rather than in a client's browser) — unless `png_load_succeeds` vouches
    that the decode would succeed, which it answers for most PNG outputs in a fraction of the decode's CPU time."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format
                width, height = image.size
                if image_format not in ALLOWED_FORMATS:
                    raise InvalidOutput(
                        "output_unsupported_format", f"{image_format} images are not accepted"
                    )
                if width * height > max_pixels:
                    raise InvalidOutput(
                        "output_dimensions_too_large", f"{width}x{height} is more than {max_pixels} pixels"
                    )
                if not png_load_succeeds(image=image, data=data):
                    image.load()
    except InvalidOutput:
        raise
    # Pillow's own messages name Python objects (`<_io.BytesIO object at 0x…>`); ours say what is wrong.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidOutput("output_dimensions_too_large", f"more than {max_pixels} pixels") from exc
    # Pillow's parsers raise whatever a malformed field trips, not only OSError/SyntaxError/ValueError (an empty
    # iCCP chunk after the image data raises IndexError from `load()`): a file that cannot be decoded is refused
    # whichever exception says so, rather than escaping as a 500 for an input image.
    except Exception as exc:
        raise InvalidOutput(
            "output_not_image", "not a readable image (PNG, JPEG or WEBP, complete and uncorrupted)"
        ) from exc
    return image_format, width, height


def image_verify(data: bytes, *, max_pixels: int) -> VerifiedImage:
    image_format, width, height = _verify_bytes(data, max_pixels=max_pixels)
    content_type, extension = ALLOWED_FORMATS[image_format]
    return VerifiedImage(
        data=data,
        content_type=content_type,
        extension=extension,
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        byte_size=len(data),
    )


def _spooled_verify(spool: BinaryIO, *, max_pixels: int) -> VerifiedImage:
    # Read whole for the check (a full decode would hold the decoded pixels anyway, several times larger).
    spool.seek(0)
    verified = image_verify(spool.read(), max_pixels=max_pixels)
    spool.seek(0)
    verified.data, verified.file = b"", spool
    return verified


def _decoded_verify(b64_json: str, *, max_bytes: int, max_pixels: int) -> VerifiedImage:
    # Kept in memory, not spooled: the answer's base64 is in memory anyway, and writing 2–3 MB to a temporary file
    # and reading it back cost more CPU than the check itself.
    data = _b64_decode(b64_json, max_bytes=max_bytes)
    verified = image_verify(data, max_pixels=max_pixels)
    verified.data, verified.file = b"", io.BytesIO(data)
    return verified


def _b64_decode(b64_json: str, *, max_bytes: int) -> bytes:
    payload = b64_json.split(",", 1)[1] if b64_json.startswith("data:") else b64_json
    if len(payload) > (max_bytes + 2) // 3 * 4 + 4:
        raise InvalidOutput("output_too_large", f"the base64 image is larger than {max_bytes} bytes")
    try:
        # pybase64 (SIMD) rather than the standard library: 0.2 against 9 ms for a 3 MB gpt-image-2 answer, whose
        # validation (`validate=True`, a regular expression over the whole text) was the forwarder's largest cost.
        # Its strict mode refuses what the standard one does, and also padding beyond the last group.
        data = pybase64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidOutput("output_invalid_base64", "the image is not valid base64") from exc
    if len(data) > max_bytes:
        raise InvalidOutput("output_too_large", f"the image is larger than {max_bytes} bytes")
    return data


async def output_materialize(
    raw: RawOutput, *, max_bytes: int, max_pixels: int, allow_private: bool, deadline_seconds: float,
    spool_bytes: int = 512 * 1024, client: httpx.AsyncClient | None = None, executor: Executor | None = None,
) -> VerifiedImage:
    """Decode one output, or fetch it into a temporary file, and verify it. The caller stores `file` and then calls
    `discard()`."""
    if raw.b64_json:
        # Decoding and verifying take CPU time; keep the event loop serving the other generations meanwhile.
        return await asyncio.get_running_loop().run_in_executor(
            executor, partial(_decoded_verify, raw.b64_json, max_bytes=max_bytes, max_pixels=max_pixels)
        )
    spool = tempfile.SpooledTemporaryFile(max_size=spool_bytes)
    try:
        if raw.url:
            try:
                response = await safe_get(
                    raw.url, max_bytes=max_bytes, deadline_seconds=deadline_seconds, allow_private=allow_private,
                    sink=spool, client=client,
                )
            except UnsafeTarget as exc:
                raise InvalidOutput(
                    "output_unsafe_url", "the image URL is not a public address", detail=str(exc)
                ) from exc
            except ResponseTooLarge as exc:
                raise InvalidOutput(
                    "output_too_large", f"the image is larger than {max_bytes} bytes", detail=str(exc)
                ) from exc
            except FetchFailed as exc:
                raise InvalidOutput(
                    "output_fetch_failed", "the image URL could not be fetched", detail=str(exc)
                ) from exc
            if response.status_code != 200:
                raise InvalidOutput("output_fetch_failed", f"the image URL answered HTTP {response.status_code}")
        else:
            raise InvalidOutput("output_missing", "the output has neither a URL nor base64 data")
        # Decoding a large image takes CPU time; keep the event loop serving the other generations meanwhile.
        return await asyncio.get_running_loop().run_in_executor(
            executor, partial(_spooled_verify, spool, max_pixels=max_pixels)
        )
    except BaseException:
        spool.close()
        raise
