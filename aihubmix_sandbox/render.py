"""Real images for the sandbox: the requested size and format, a colour taken from the prompt, the prompt recorded
in the file.

Drawing and encoding a 1024x1024 PNG takes 20–40 ms of CPU, which capped one sandbox process at about 22 calls/s:
too slow to stand in for an upstream that answers hundreds of calls at once. So the picture is drawn once per
(model, size, format, index, colour) — `PALETTE_SIZE` colours chosen by a hash of the prompt — and each call gets
that picture with its prompt added as a metadata chunk (PNG `tEXt`, JPEG comment; WEBP files are served as drawn):
a complete, decodable file whose bytes differ from prompt to prompt, for about 0.1 ms."""

import hashlib
import io
import os
import struct
import threading
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
    if text in ("1k", "2k", "4k"):
        side = {"1k": 1024, "2k": 2048, "4k": 4096}[text]
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


def image_render(
    *, prompt: str, model: str, width: int, height: int, index: int, image_format: str = "PNG"
) -> bytes:
    colour = hashlib.sha256(prompt.encode()).digest()[0] % PALETTE_SIZE
    with _drawing:
        picture = _picture(
            model=model, width=width, height=height, index=index, colour=colour, image_format=image_format,
            answer_bytes=_answer_bytes,
        )
    return _with_text(picture, image_format, f"{prompt} #{index + 1}")


@lru_cache(maxsize=1)
def decompression_bomb() -> bytes:
    """A small PNG that claims 20000x20000 pixels: what an image bomb looks like to a verifier."""
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
