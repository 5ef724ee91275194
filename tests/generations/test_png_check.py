"""PNG outputs are checked without decoding their pixels (`images._png_check`), and that check refuses what a full
decode refuses: a corrupted or truncated file, image data that is not a complete zlib stream of the size the header
promises, rows with an invalid filter type."""

import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from generations.images import InvalidOutput
from generations.providers import RawOutput
from tests.generations.images_support import materialize

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_of_rows(width: int, height: int, raw: bytes) -> bytes:
    """An 8-bit RGB PNG whose (filtered) image data is `raw`, with correct chunk CRCs."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def rows(width: int, height: int, filter_type: int = 0) -> bytes:
    return b"".join(bytes([filter_type]) + bytes([120, 40, 200]) * width for _ in range(height))


def verified(data: bytes) -> tuple[str, int, int]:
    image = materialize(RawOutput(url=None, b64_json=base64.b64encode(data).decode()))
    return image.content_type, image.width, image.height


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "1", "I;16", "P"])
def test_valid_pngs_of_every_kind_are_accepted(mode: str) -> None:
    buffer = io.BytesIO()
    Image.new(mode, (37, 23)).save(buffer, format="PNG")
    assert verified(buffer.getvalue()) == ("image/png", 37, 23)


def test_a_png_written_by_hand_is_accepted() -> None:
    assert verified(png_of_rows(16, 9, rows(16, 9))) == ("image/png", 16, 9)


def _refused(data: bytes) -> str:
    with pytest.raises(InvalidOutput) as caught:
        verified(data)
    return caught.value.code


def test_a_flipped_byte_in_the_image_data_is_refused() -> None:
    data = bytearray(png_of_rows(16, 9, rows(16, 9)))
    data[data.index(b"IDAT") + 10] ^= 0x55
    assert _refused(bytes(data)) == "output_not_image"


def test_image_data_cut_short_with_correct_crcs_is_refused() -> None:
    whole = zlib.compress(rows(64, 64))
    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    data = SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", whole[: len(whole) // 2]) + chunk(b"IEND", b"")
    assert _refused(data) == "output_not_image"


def test_fewer_rows_than_the_header_promises_are_refused() -> None:
    assert _refused(png_of_rows(16, 9, rows(16, 8))) == "output_not_image"


def test_an_invalid_row_filter_type_is_refused() -> None:
    assert _refused(png_of_rows(16, 9, rows(16, 9, filter_type=7))) == "output_not_image"


def test_a_file_without_its_end_chunk_is_refused() -> None:
    data = png_of_rows(16, 9, rows(16, 9))
    assert _refused(data[: -len(chunk(b"IEND", b""))]) == "output_not_image"


def test_the_pixel_limit_applies_before_anything_is_inflated() -> None:
    header = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0)
    data = SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", b"garbage") + chunk(b"IEND", b"")
    assert _refused(data) == "output_dimensions_too_large"
