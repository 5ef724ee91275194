"""Real images for the sandbox: the requested size and format, a colour taken from the prompt, the prompt recorded
in the file.

Drawing and encoding a 1024x1024 PNG takes 20–40 ms of CPU, which capped one sandbox process at about 22 calls/s:
too slow to stand in for an upstream that answers hundreds of calls at once. So the picture is drawn once per
(model, size, format, index, colour) — `PALETTE_SIZE` colours chosen by a hash of the prompt — and each call gets
that picture with its prompt added as a metadata chunk (PNG `tEXt`, JPEG comment; WEBP files are served as drawn):
a complete, decodable file whose bytes differ from prompt to prompt, for about 0.1 ms."""

import base64
import hashlib
import io
import json
import os
import re
import struct
import threading
import uuid
import zlib
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

MAX_SIDE = 4096
PALETTE_SIZE = 8
_FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "jpg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_METADATA_MAX_BYTES = 2000
# Hundreds of calls arrive at once on a cold cache: one thread draws a picture while the others wait for it,
# instead of all of them drawing the same one.
_drawing = threading.Lock()
# Answers of about this many bytes once base64-encoded (0: as drawn, ~20 KB): gpt-image-2 answers ~3 MB at high
# quality, and the benches need that weight on the wire and in the verifier. Set per sandbox process
# (`--answer-bytes`).
_answer_bytes = 0


def answer_bytes_set(value: int) -> None:
    global _answer_bytes
    _answer_bytes = max(0, value)


def size_parse(value: object) -> tuple[int, int]:
    """`1024x768`, `1024*768`, `2K`, an aspect ratio (`16:9`, or Ideogram's `16x9`), or nothing."""
    text = str(value or "").strip().lower().replace("*", "x").replace(":", "x")
    if text in ("1k", "2k", "3k", "4k"):
        side = 1024 * int(text[0])
        return side, side
    parts = text.split("x")
    if len(parts) == 2 and all(part.isdigit() and int(part) > 0 for part in parts):
        width, height = int(parts[0]), int(parts[1])
        if width <= 32 and height <= 32:
            scale = 1024 / max(width, height)
            width, height = round(width * scale), round(height * scale)
        return min(width, MAX_SIDE), min(height, MAX_SIDE)
    return 1024, 1024


def format_for(name: object) -> tuple[str, str, str]:
    """(Pillow format, content type, extension) for an `output_format` value; PNG when absent or unknown."""
    key = str(name or "png").lower()
    pillow_format, content_type = _FORMATS.get(key, _FORMATS["png"])
    return pillow_format, content_type, "jpg" if pillow_format == "JPEG" else pillow_format.lower()


@lru_cache(maxsize=256)
def _picture(
    *, model: str, width: int, height: int, index: int, colour: int, image_format: str, answer_bytes: int = 0
) -> bytes:
    """One drawn and encoded picture; the cache holds a few hundred KB per size in use (a few MB with
    `answer_bytes`: rows of noise, which no compressor shrinks, bring the file up to that weight)."""
    seed = hashlib.sha256(f"{colour}".encode()).digest()
    background = (64 + seed[0] // 2, 64 + seed[1] // 2, 64 + seed[2] // 2)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    font_size = max(10, min(width, height) // 24)
    font = ImageFont.load_default(size=font_size)
    lines = [f"{model}  {width}x{height}  #{index + 1}", "", "AIHubMix sandbox", f"colour {colour + 1}/{PALETTE_SIZE}"]
    draw.multiline_text((font_size, font_size), "\n".join(lines), fill=(255, 255, 255), font=font, spacing=4)
    if answer_bytes:
        file_bytes = answer_bytes * 3 // 4  # base64 makes 4 bytes of 3
        rows = min(height // 2 + height // 4, file_bytes // (width * 3) + 1)
        noise = Image.frombytes("RGB", (width, rows), os.urandom(width * rows * 3))
        image.paste(noise, (0, height - rows))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **({"compress_level": 1} if image_format == "PNG" else {}))
    return buffer.getvalue()


def _with_text(data: bytes, image_format: str, text: str) -> bytes:
    """`data` with `text` stored as metadata the decoder skips: a PNG `tEXt` chunk before IEND, a JPEG COM segment
    after SOI. Other formats are returned unchanged."""
    payload = text.encode("latin-1", "replace")[:_METADATA_MAX_BYTES]
    if image_format == "PNG" and data.endswith(_PNG_IEND):
        body = b"Description\x00" + payload
        chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
        return data[: -len(_PNG_IEND)] + chunk + _PNG_IEND
    if image_format == "JPEG" and data.startswith(b"\xff\xd8"):
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + data[2:]
    return data


def _picture_for(*, prompt: str, model: str, width: int, height: int, index: int, image_format: str) -> bytes:
    colour = hashlib.sha256(prompt.encode()).digest()[0] % PALETTE_SIZE
    with _drawing:
        return _picture(
            model=model, width=width, height=height, index=index, colour=colour, image_format=image_format,
            answer_bytes=_answer_bytes,
        )


def image_render(
    *, prompt: str, model: str, width: int, height: int, index: int, image_format: str = "PNG"
) -> bytes:
    picture = _picture_for(prompt=prompt, model=model, width=width, height=height, index=index,
                           image_format=image_format)
    return _with_text(picture, image_format, f"{prompt} #{index + 1}")


class Base64Text(str):
    """Base64 text, which JSON carries as is (no character needs escaping): `json_bytes` splices it into the
    encoded answer instead of letting the encoder scan 3 MB of it character by character (~15 ms a call)."""


@lru_cache(maxsize=64)
def _picture_base64_head(picture: bytes) -> tuple[str, int]:
    """The base64 of the picture's bytes before its IEND, cut at a multiple of 3 so that the rest can be encoded
    on its own and appended: (that base64, how many bytes it covers)."""
    covered = (len(picture) - len(_PNG_IEND)) // 3 * 3
    return base64.b64encode(picture[:covered]).decode(), covered


def image_render_base64(
    *, prompt: str, model: str, width: int, height: int, index: int, image_format: str = "PNG"
) -> Base64Text:
    """`image_render`'s file as base64. For a PNG, the unchanging head's base64 is kept with the picture, so a
    3 MB answer costs a few KB of encoding: a sandbox serving ~2,000 such calls a minute must not be the bench's
    bottleneck."""
    picture = _picture_for(prompt=prompt, model=model, width=width, height=height, index=index,
                           image_format=image_format)
    if image_format != "PNG":
        return Base64Text(base64.b64encode(_with_text(picture, image_format, f"{prompt} #{index + 1}")).decode())
    head, covered = _picture_base64_head(picture)
    # The tEXt chunk goes just before IEND, after the covered head: only the tail is built and encoded.
    tail = _with_text(picture[covered:], image_format, f"{prompt} #{index + 1}")
    return Base64Text(head + base64.b64encode(tail).decode())


def json_bytes(payload: object) -> bytes:
    """`json.dumps(payload).encode()`, with each `Base64Text` spliced in rather than encoded."""
    spliced: list[str] = []
    marker = uuid.uuid4().hex  # no answer text (a prompt echoed back) can forge it

    def swap(value: object) -> object:
        if isinstance(value, Base64Text):
            spliced.append(value)
            return f"{marker}-{len(spliced) - 1}"
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [swap(item) for item in value]
        return value

    body = json.dumps(swap(payload))
    if not spliced:
        return body.encode()
    parts = re.split(f'"{marker}-(\\d+)"', body)
    for position in range(1, len(parts), 2):
        parts[position] = f'"{spliced[int(parts[position])]}"'
    return "".join(parts).encode()


@lru_cache(maxsize=1)
def decompression_bomb() -> bytes:
    """A small PNG that claims 20000x20000 pixels: what an image bomb looks like to a verifier."""
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
