"""Real images for the sandbox: the requested size, a colour taken from the prompt, the prompt written on it."""

import hashlib
import io
import textwrap
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

MAX_SIDE = 4096
_FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "jpg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}


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


@lru_cache(maxsize=128)
def image_render(
    *, prompt: str, model: str, width: int, height: int, index: int, image_format: str = "PNG"
) -> bytes:
    digest = hashlib.sha256(prompt.encode()).digest()
    background = (64 + digest[0] // 2, 64 + digest[1] // 2, 64 + digest[2] // 2)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    font_size = max(10, min(width, height) // 24)
    font = ImageFont.load_default(size=font_size)
    columns = max(10, int(width / (font_size * 0.6)) - 2)
    lines = [f"{model}  {width}x{height}  #{index + 1}", "", *textwrap.wrap(prompt, columns)[:20]]
    draw.multiline_text((font_size, font_size), "\n".join(lines), fill=(255, 255, 255), font=font, spacing=4)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **({"compress_level": 1} if image_format == "PNG" else {}))
    return buffer.getvalue()


@lru_cache(maxsize=1)
def decompression_bomb() -> bytes:
    """A small PNG that claims 20000x20000 pixels: what an image bomb looks like to a verifier."""
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
