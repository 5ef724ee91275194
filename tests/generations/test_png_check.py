"""PNG outputs are accepted or refused exactly as a full Pillow decode would (`Image.open(...).load()`), most of them
without decoding their pixels (`generations.png.png_load_succeeds`): the cases that decide a verdict, one by one.
test_png_verdicts.py compares the two on mutated files at large."""

import base64
import io
import struct
import zlib
from unittest import mock

import pytest
from PIL import Image, PngImagePlugin

from aihubmix_sandbox.render import image_render
from generations.images import InvalidOutput
from generations.png import png_load_succeeds
from generations.providers import RawOutput
from tests.generations.images_support import materialize

SIGNATURE = b"\x89PNG\r\n\x1a\n"
IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def header(width: int, height: int) -> bytes:
    """An 8-bit RGB image header."""
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


def png_of_rows(width: int, height: int, raw: bytes) -> bytes:
    """An 8-bit RGB PNG whose (filtered) image data is `raw`, with correct chunk CRCs."""
    return SIGNATURE + header(width, height) + chunk(b"IDAT", zlib.compress(raw)) + IEND


def rows(width: int, height: int, filter_type: int = 0) -> bytes:
    return b"".join(bytes([filter_type]) + bytes([120, 40, 200]) * width for _ in range(height))


def varied_rows(width: int, height: int) -> bytes:
    """Rows that compress to more than a few bytes, so a cut in their stream falls among pixels."""
    return b"".join(bytes([0]) + bytes((x * 37 + y * 101) % 251 for x in range(3 * width)) for y in range(height))


def verified(data: bytes) -> tuple[str, int, int]:
    image = materialize(RawOutput(url=None, b64_json=base64.b64encode(data).decode()))
    return image.content_type, image.width, image.height


def refused(data: bytes) -> str:
    with pytest.raises(InvalidOutput) as caught:
        verified(data)
    return caught.value.code


def pillow_decodes(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception:
        return False
    return True


def vouched(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        return png_load_succeeds(image=image, data=data)


def pillow_png(mode: str, size: tuple[int, int] = (37, 23)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "1", "I;16", "P"])
def test_valid_pngs_of_every_kind_are_accepted(mode: str) -> None:
    assert verified(pillow_png(mode)) == ("image/png", 37, 23)


def test_a_png_written_by_hand_is_accepted() -> None:
    assert verified(png_of_rows(16, 9, rows(16, 9))) == ("image/png", 16, 9)


def test_a_chunk_between_two_idat_chunks_is_refused() -> None:
    # The decoder reads image data only while the chunks are IDAT: what follows the tEXt chunk is never read, and
    # Pillow calls the file truncated. The shortcut once took every IDAT in the file and accepted it.
    stream = zlib.compress(varied_rows(16, 9))
    data = (
        SIGNATURE + header(16, 9) + chunk(b"IDAT", stream[: len(stream) // 2])
        + chunk(b"tEXt", b"Comment\x00between") + chunk(b"IDAT", stream[len(stream) // 2 :]) + IEND
    )
    assert not pillow_decodes(data)
    assert refused(data) == "output_not_image"


def test_a_flipped_byte_in_the_image_data_is_refused() -> None:
    data = bytearray(png_of_rows(16, 9, rows(16, 9)))
    data[data.index(b"IDAT") + 10] ^= 0x55
    assert refused(bytes(data)) == "output_not_image"


def test_image_data_cut_short_with_correct_crcs_is_refused() -> None:
    whole = zlib.compress(varied_rows(64, 64))
    data = SIGNATURE + header(64, 64) + chunk(b"IDAT", whole[: len(whole) // 2]) + IEND
    assert refused(data) == "output_not_image"


def test_a_row_cut_short_is_refused() -> None:
    assert refused(png_of_rows(16, 9, rows(16, 9)[:-1])) == "output_not_image"


def test_an_invalid_row_filter_type_is_refused() -> None:
    assert refused(png_of_rows(16, 9, rows(16, 9, filter_type=7))) == "output_not_image"


def test_an_invalid_filter_type_past_the_first_inflate_block_is_refused() -> None:
    # Rows are inflated a block at a time and the blocks end mid-row: the filter types are found all the same.
    good = b"".join(bytes([0]) + bytes(3 * 16) for _ in range(9))
    bad = bytearray(good)
    bad[49 * 7] = 7  # row 8 of 9; a row is 49 bytes, a block 10
    with mock.patch("generations.png._BLOCK_BYTES", 10):
        assert vouched(png_of_rows(16, 9, good))
        assert refused(png_of_rows(16, 9, bytes(bad))) == "output_not_image"


def test_last_rows_left_inside_zlib_by_a_missing_checksum_are_refused() -> None:
    # Identical rows compress to a match running across the last rows; without the 4-byte checksum no input is left
    # when the decoder asks for the last row, so it never comes out, although zlib alone inflates everything.
    raw = rows(1, 5)
    stream = zlib.compress(raw)[:-4]
    assert len(zlib.decompressobj().decompress(stream)) == len(raw)
    data = SIGNATURE + header(1, 5) + chunk(b"IDAT", stream) + IEND
    assert not pillow_decodes(data)
    assert refused(data) == "output_not_image"


def test_a_malformed_chunk_pillow_parses_after_the_image_data_is_refused() -> None:
    # An empty iCCP chunk makes Pillow's `load()` raise IndexError, not one of its usual errors.
    data = png_of_rows(16, 9, rows(16, 9))
    assert refused(data[: -len(IEND)] + chunk(b"iCCP", b"") + IEND) == "output_not_image"


def test_text_past_pillows_text_memory_limit_after_the_data_is_refused() -> None:
    # 64 zTXt chunks before the data inflate to exactly Pillow's limit (64 MiB); one more character after the data
    # passes it, and `load()` refuses the file.
    text = chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"a" * PngImagePlugin.MAX_TEXT_CHUNK, 9))
    assert PngImagePlugin.MAX_TEXT_MEMORY == 64 * PngImagePlugin.MAX_TEXT_CHUNK
    data = (
        SIGNATURE + header(16, 9) + text * 64 + chunk(b"IDAT", zlib.compress(rows(16, 9)))
        + chunk(b"tEXt", b"k\x00v") + IEND
    )
    assert not pillow_decodes(data)
    assert refused(data) == "output_not_image"


def test_the_pixel_limit_applies_before_anything_is_inflated() -> None:
    data = SIGNATURE + header(20_000, 20_000) + chunk(b"IDAT", b"garbage") + IEND
    assert refused(data) == "output_dimensions_too_large"


# Pillow's decode accepts these, and so do we: the verdicts are the same, looser or not.
LIKE_PILLOW = {
    "no IEND": png_of_rows(16, 9, rows(16, 9))[: -len(IEND)],
    "IEND cut": png_of_rows(16, 9, rows(16, 9))[:-5],
    "bytes after IEND": png_of_rows(16, 9, rows(16, 9)) + b"trailing",
    "a wrong IDAT CRC": bytes(byte ^ 0xFF if at == -len(IEND) - 1 else byte for at, byte in enumerate(
        png_of_rows(16, 9, rows(16, 9)), start=-len(png_of_rows(16, 9, rows(16, 9))))),
    "bytes after the zlib stream": SIGNATURE + header(16, 9) + chunk(b"IDAT", zlib.compress(rows(16, 9)) + b"xx")
    + IEND,
}


@pytest.mark.parametrize("case", LIKE_PILLOW)
def test_what_a_full_decode_accepts_is_accepted(case: str) -> None:
    assert pillow_decodes(LIKE_PILLOW[case])
    assert verified(LIKE_PILLOW[case]) == ("image/png", 16, 9)


def test_a_stream_ending_rows_early_on_a_row_boundary_is_accepted_as_pillow_does() -> None:
    # The decoder stops at the stream's end and leaves the missing rows black: Pillow accepts the file, so must we.
    data = png_of_rows(16, 9, rows(16, 8))
    assert pillow_decodes(data)
    assert verified(data) == ("image/png", 16, 9)


def split_idat(data: bytes, size: int) -> bytes:
    start = data.index(b"IDAT") - 4
    length = int.from_bytes(data[start : start + 4])
    stream = data[start + 8 : start + 8 + length]
    pieces = b"".join(chunk(b"IDAT", stream[at : at + size]) for at in range(0, len(stream), size))
    return data[:start] + pieces + data[start + 12 + length :]


# What the shortcut vouches for, without a decode: what upstreams send (the drain bench's speed rests on it).
SHORTCUT = {
    "sandbox output, tEXt after the data": image_render(prompt="p", model="m", width=64, height=48, index=0),
    "several IDAT chunks": split_idat(png_of_rows(16, 9, varied_rows(16, 9)), 50),
    **{f"{mode} written by Pillow": pillow_png(mode) for mode in ["RGB", "RGBA", "L", "LA", "1", "I;16"]},
    **LIKE_PILLOW,
}


@pytest.mark.parametrize("case", SHORTCUT)
def test_the_shortcut_vouches_for_ordinary_outputs(case: str) -> None:
    assert vouched(SHORTCUT[case])


def test_palette_and_interlaced_pngs_are_decoded() -> None:
    interlaced = SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 9, 8, 2, 0, 0, 1)) + chunk(
        b"IDAT", zlib.compress(rows(16, 9))
    ) + IEND
    assert not vouched(pillow_png("P"))
    assert not vouched(interlaced)
