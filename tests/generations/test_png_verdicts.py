"""The PNG shortcut (`generations.png.png_load_succeeds`) changes no verdict: real PNGs — written by Pillow in every
mode, with metadata chunks before and after the image data, and the AIHubMix sandbox's output — are mutated the ways
a broken upstream or a cut download mutates them (chunks moved, inserted between IDATs, dropped or duplicated, image
data re-split or recompressed with bad filter types, too few or too many rows, a bad checksum or trailing bytes,
length fields and CRCs changed, the file cut or extended, a byte flipped), and `image_verify` must answer exactly
what it answers with the shortcut switched off: a full Pillow decode (open + load, the project's settings).

Deterministic for CI: derandomized, no example database; 1000 examples take ~3 s. The mutations are weighted
towards what decides a verdict near the line, so that each rule of the shortcut, loosened, fails this test."""

import io
import struct
import zlib
from dataclasses import dataclass
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from aihubmix_sandbox.render import image_render
from generations import png
from generations.images import InvalidOutput, image_verify

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 1_000_000
# Chunk names to insert: the image's own, those Pillow parses, unknown ones (ancillary, critical, private), DDAT
# (which Pillow also reads as image data) and names that are not four letters.
NAMES = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"tEXt", b"zTXt", b"iTXt",
    b"pHYs", b"eXIf", b"acTL", b"fcTL", b"fdAT", b"tIME", b"abCd", b"ABCD", b"DDAT", b"ID T", b"\0\0\0\0",
]


@dataclass
class Chunk:
    name: bytes
    body: bytes
    length_delta: int = 0  # the length field says len(body) + length_delta
    crc_xor: int = 0


@dataclass
class Base:
    label: str
    chunks: list[Chunk]
    row: int  # bytes per row of the image data, the filter type byte included


def parse(data: bytes) -> list[Chunk]:
    chunks, position = [], len(SIGNATURE)
    while position < len(data):
        length, name = struct.unpack_from(">I4s", data, position)
        chunks.append(Chunk(name, data[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def serialize(chunks: list[Chunk]) -> bytes:
    out = [SIGNATURE]
    for chunk in chunks:
        length = max(0, len(chunk.body) + chunk.length_delta) & 0xFFFFFFFF
        crc = zlib.crc32(chunk.name + chunk.body) ^ chunk.crc_xor
        out.append(struct.pack(">I", length) + chunk.name + chunk.body + struct.pack(">I", crc))
    return b"".join(out)


def pillow_png(mode: str, size: tuple[int, int], **params: object) -> bytes:
    # Noise, so that rows use every filter type and the data does not compress to nothing.
    image = Image.effect_noise(size, 60).convert(mode) if mode != "I;16" else Image.new("I;16", size, 40_000)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **params)
    return buffer.getvalue()


def hand_png(width: int, height: int, depth: int, colour: int, samples: int, *, flat: bool = False) -> bytes:
    """Bit depths and colour types Pillow does not write (16-bit RGB/RGBA, 2- and 4-bit grey), and flat unfiltered
    rows: their data is one long match across rows, which a cut stream can leave inside zlib."""
    row = 1 + (width * samples * depth + 7) // 8
    pixels = [(120, 40, 200)[x % 3] if flat else x for x in range(row - 1)]
    raw = b"".join(bytes([0 if flat else y % 5]) + bytes((byte + y * 7 * (not flat)) % 256 for byte in pixels)
                   for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return serialize([Chunk(b"IHDR", header), Chunk(b"IDAT", zlib.compress(raw)), Chunk(b"IEND", b"")])


def oversized_palette() -> bytes:
    """A palette image whose PLTE holds 800 bytes: Pillow refuses it in `load()` ("invalid palette size")."""
    chunks = parse(pillow_png("P", (5, 4)))
    for chunk in chunks:
        if chunk.name == b"PLTE":
            chunk.body = bytes(800)
    return serialize(chunks)


def base_of(label: str, data: bytes) -> Base:
    chunks = parse(data)
    width, _, depth, colour = struct.unpack(">IIBB", chunks[0].body[:10])
    samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    return Base(label, chunks, 1 + (width * samples * depth + 7) // 8)


def bases() -> list[Base]:
    info = PngImagePlugin.PngInfo()
    info.add_text("Description", "before the data")
    info.add_text("Comment", "compressed", zip=True)
    info.add_itxt("Title", "ünïcode", lang="fr")
    info.add(b"abCd", b"private, after the data", after_idat=True)
    files = {
        "RGB 16x9": pillow_png("RGB", (16, 9)),
        "RGBA 7x5": pillow_png("RGBA", (7, 5)),
        "L 33x4": pillow_png("L", (33, 4)),
        "LA 3x11": pillow_png("LA", (3, 11)),
        "1 13x6": pillow_png("1", (13, 6)),
        "I;16 5x5": pillow_png("I;16", (5, 5)),
        "P 9x9": pillow_png("P", (9, 9)),
        "P+tRNS 6x4": pillow_png("P", (6, 4), transparency=3),
        "P, 800-byte PLTE": oversized_palette(),
        "RGB+tRNS 4x4": pillow_png("RGB", (4, 4), transparency=(1, 2, 3)),
        "RGB 1x1": pillow_png("RGB", (1, 1)),
        "RGB flat 3x6": hand_png(3, 6, 8, 2, 3, flat=True),
        "RGB flat 4x5": hand_png(4, 5, 8, 2, 3, flat=True),
        "RGB stored": pillow_png("RGB", (12, 8), compress_level=0),
        "RGB metadata": pillow_png(
            "RGB", (10, 6), pnginfo=info, dpi=(72, 72), exif=Image.Exif(), icc_profile=b"\0" * 40
        ),
        "RGB 16-bit": hand_png(6, 4, 16, 2, 3),
        "RGBA 16-bit": hand_png(5, 3, 16, 6, 4),
        "L 2-bit": hand_png(11, 3, 2, 0, 1),
        "L 4-bit": hand_png(9, 5, 4, 0, 1),
        "sandbox 96x64": image_render(prompt="a lighthouse", model="property", width=96, height=64, index=0),
    }
    return [base_of(label, data) for label, data in files.items()]


BASES = bases()


def outcome(data: bytes) -> tuple[object, ...]:
    try:
        image = image_verify(data, max_pixels=MAX_PIXELS)
    except InvalidOutput as exc:
        return ("refused", exc.code)
    return ("accepted", image.content_type, image.width, image.height)


def idat_indexes(chunks: list[Chunk]) -> list[int]:
    return [index for index, chunk in enumerate(chunks) if chunk.name == b"IDAT"]


def split(stream: bytes, draw: st.DrawFn) -> list[Chunk]:
    pieces, rest = [], stream
    while rest and len(pieces) < 6:
        size = draw(st.integers(0, max(1, len(rest))))
        pieces.append(Chunk(b"IDAT", rest[:size]))
        rest = rest[size:]
    return [*pieces, Chunk(b"IDAT", rest)] if rest or not pieces else pieces


def replace_image_data(chunks: list[Chunk], stream: bytes, draw: st.DrawFn) -> None:
    indexes = idat_indexes(chunks)
    at = indexes[0] if indexes else draw(st.integers(1, len(chunks)))
    chunks[:] = [chunk for chunk in chunks if chunk.name != b"IDAT"]
    chunks[at:at] = split(stream, draw)


def mutate_move(draw: st.DrawFn, base: Base, chunks: list[Chunk]) -> None:
    chunk = chunks.pop(draw(st.integers(0, len(chunks) - 1)))
    chunks.insert(draw(st.integers(0, len(chunks))), chunk)


def mutate_insert(draw: st.DrawFn, base: Base, chunks: list[Chunk]) -> None:
    name = draw(st.sampled_from(NAMES))
    body = draw(st.one_of(st.binary(max_size=40), st.sampled_from([b"", b"key\0value", bytes(800)])))
    indexes = idat_indexes(chunks)
    if indexes and draw(st.booleans()):  # between two IDAT chunks or right after the data: the interesting places
        if len(indexes) == 1 and draw(st.booleans()):
            replace_image_data(chunks, chunks[indexes[0]].body, draw)
            indexes = idat_indexes(chunks)
        at = draw(st.sampled_from(indexes)) + 1
    else:
        at = draw(st.integers(0, len(chunks)))
    chunks.insert(at, Chunk(name, body))


def mutate_drop(draw: st.DrawFn, base: Base, chunks: list[Chunk]) -> None:
    if len(chunks) > 1:
        chunks.pop(draw(st.integers(0, len(chunks) - 1)))


def mutate_duplicate(draw: st.DrawFn, base: Base, chunks: list[Chunk]) -> None:
    chunk = chunks[draw(st.integers(0, len(chunks) - 1))]
    chunks.insert(draw(st.integers(0, len(chunks))), Chunk(chunk.name, chunk.body))


def mutate_resplit(draw: st.DrawFn, base: Base, chunks: list[Chunk]) -> None:
    replace_image_data(chunks, b"".join(chunk.body for chunk in chunks if chunk.name == b"IDAT"), draw)


def mutate_recompress(draw: st.DrawFn, base: Base, chunks: list[Chunk]) -> None:
    """New image data: the rows changed (a filter type, fewer or more rows, a row cut), compressed again, and the
    zlib stream itself changed (checksum dropped or wrong, bytes after its end)."""
    try:
        rows = bytearray(zlib.decompress(b"".join(chunk.body for chunk in chunks if chunk.name == b"IDAT")))
    except zlib.error:
        return
    change = draw(st.sampled_from([
        "none", "filter", "filter", "fewer rows", "more rows", "one byte more", "one byte less", "one byte less",
        "cut", "byte", "flat", "flat",
    ]))
    if change == "filter" and rows:
        rows[draw(st.integers(0, (len(rows) - 1) // base.row)) * base.row] = draw(st.sampled_from([4, 5, 255]))
    elif change == "fewer rows":
        rows = rows[: len(rows) - base.row * draw(st.integers(1, 3))]
    elif change == "more rows":
        rows += bytes([0]) * base.row * draw(st.integers(1, 2))
    elif change == "cut" and rows:
        rows = rows[: draw(st.integers(0, len(rows) - 1))]
    elif change == "one byte more":
        rows += b"\0"
    elif change == "one byte less":
        rows = rows[:-1]
    elif change == "flat":  # one long match across rows, which a stream without its checksum can leave in zlib
        rows = bytearray(len(rows))
    elif change == "byte" and rows:
        rows[draw(st.integers(0, len(rows) - 1))] = draw(st.integers(0, 255))
    stream = zlib.compress(bytes(rows), draw(st.integers(0, 9)))
    tail = draw(st.sampled_from([
        "intact", "intact", "intact", "no checksum", "no checksum", "bad checksum", "trailing bytes", "cut",
    ]))
    if tail == "no checksum":
        stream = stream[:-4]
    elif tail == "bad checksum":
        stream = stream[:-1] + bytes([stream[-1] ^ 0x20])
    elif tail == "trailing bytes":
        stream += draw(st.binary(min_size=1, max_size=12))
    elif tail == "cut":
        stream = stream[: draw(st.integers(0, len(stream) - 1))]
    replace_image_data(chunks, stream, draw)


def mutate_checksum(draw: st.DrawFn, base: Base, chunks: list[Chunk]) -> None:
    """The zlib checksum (the last 4 bytes of the image data) dropped or cut."""
    indexes = idat_indexes(chunks)
    if indexes:
        last = chunks[indexes[-1]]
        last.body = last.body[: -draw(st.sampled_from([4, 4, 1, 3]))]


def mutate_crc(draw: st.DrawFn, base: Base, chunks: list[Chunk]) -> None:
    chunks[draw(st.integers(0, len(chunks) - 1))].crc_xor = draw(st.integers(1, 0xFFFFFFFF))


def mutate_length(draw: st.DrawFn, base: Base, chunks: list[Chunk]) -> None:
    delta = draw(st.sampled_from([-8, -4, -1, 1, 3, 12, 2**31]))
    chunks[draw(st.integers(0, len(chunks) - 1))].length_delta = delta


def mutate_header(draw: st.DrawFn, base: Base, chunks: list[Chunk]) -> None:
    """One IHDR field changed, its CRC right: size, bit depth, colour type, compression, filter or interlace method."""
    header = [chunk for chunk in chunks if chunk.name == b"IHDR" and len(chunk.body) >= 13]
    if not header:
        return
    fields = list(struct.unpack(">IIBBBBB", header[0].body[:13]))
    field = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 6, 6]))  # interlacing (6) changes how rows are read
    if field < 2:
        side = fields[field]
        fields[field] = draw(st.sampled_from([0, 1, side - 1, side + 1, side * 2, 0x7FFFFFFF])) & 0xFFFFFFFF
    else:
        fields[field] = draw(st.sampled_from([0, 1, 2, 3, 4, 6, 8, 16, 255]))
    header[0].body = struct.pack(">IIBBBBB", *fields) + header[0].body[13:]


def mutate_body(draw: st.DrawFn, base: Base, chunks: list[Chunk]) -> None:
    chunk = chunks[draw(st.integers(0, len(chunks) - 1))]
    if chunk.body:
        body = bytearray(chunk.body)
        body[draw(st.integers(0, len(body) - 1))] ^= draw(st.integers(1, 255))
        chunk.body = bytes(body)


def mutate_rename(draw: st.DrawFn, base: Base, chunks: list[Chunk]) -> None:
    chunks[draw(st.integers(0, len(chunks) - 1))].name = draw(st.sampled_from(NAMES))


# Weighted towards what decides a verdict near the line: the image data and what follows it.
CHUNK_MUTATIONS = [
    *[mutate_recompress] * 6, *[mutate_insert] * 4, *[mutate_length] * 3, *[mutate_header] * 3,
    *[mutate_resplit] * 2, *[mutate_checksum] * 2, mutate_move, mutate_drop, mutate_duplicate, mutate_crc,
    mutate_body, mutate_rename,
]


def mutate_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    change = draw(st.sampled_from([*["none"] * 8, "cut", "cut near the end", "cut near the end", "append", "flip"]))
    if change == "cut":
        return data[: draw(st.integers(0, len(data) - 1))]
    if change == "cut near the end":
        return data[: len(data) - draw(st.integers(1, 48))]  # into IEND, the CRC or the body before it
    if change == "append":
        text_chunk = serialize([Chunk(b"tEXt", b"k\0v")])[len(SIGNATURE) :]
        return data + draw(st.one_of(st.binary(min_size=1, max_size=20), st.just(text_chunk)))
    if change == "flip":
        flipped = bytearray(data)
        flipped[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return bytes(flipped)
    return data


@st.composite
def mutated_pngs(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from(BASES))
    chunks = [Chunk(chunk.name, chunk.body) for chunk in base.chunks]
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
        draw(st.sampled_from(CHUNK_MUTATIONS))(draw, base, chunks)
    return mutate_bytes(draw, serialize(chunks))


@pytest.mark.slow  # a few seconds: 1000 examples, each verified twice
@pytest.mark.filterwarnings("ignore:Invalid APNG")  # Pillow's warning for a mutated acTL chunk
@settings(
    max_examples=1000, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(mutated_pngs(), st.sampled_from([7, 61, 1 << 20]))
def test_the_shortcut_gives_the_verdict_of_a_full_decode(data: bytes, block_bytes: int) -> None:
    vouched = []

    def spy(**kwargs: object) -> bool:
        vouched.append(png.png_load_succeeds(**kwargs))
        return vouched[-1]

    # Small inflate blocks end mid-row, where the rows' filter types must still be found.
    with mock.patch("generations.images.png_load_succeeds", spy), mock.patch.object(png, "_BLOCK_BYTES", block_bytes):
        verdict = outcome(data)
    with mock.patch("generations.images.png_load_succeeds", return_value=False):
        decoded = outcome(data)

    event(f"{decoded[0]}, {'vouched for' if any(vouched) else 'decoded'}")
    assert verdict == decoded
