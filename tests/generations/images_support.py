"""Small images shared by several test modules: PNGs for requests (bytes and data URLs) and the output check run
the way the forwarder runs it."""

import asyncio
import base64
import io

from PIL import Image

from generations.images import VerifiedImage, output_materialize
from generations.providers import RawOutput


def png_bytes(colour: str | tuple[int, int, int] = "teal", width: int = 64, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_url(width: int = 64, height: int = 64) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(width=width, height=height)).decode()


RED, BLUE = png_bytes((200, 30, 30)), png_bytes((30, 30, 200))
RED_URL = f"data:image/png;base64,{base64.b64encode(RED).decode()}"
BLUE_URL = f"data:image/png;base64,{base64.b64encode(BLUE).decode()}"


def materialize(
    raw: RawOutput, *, allow_private: bool = True, max_bytes: int = 1_000_000, max_pixels: int = 1_000_000
) -> VerifiedImage:
    return asyncio.run(
        output_materialize(
            raw, max_bytes=max_bytes, max_pixels=max_pixels, allow_private=allow_private, deadline_seconds=5
        )
    )
