"""Whether Pillow's full decode of a PNG would succeed, answered without decoding its pixels.

Every output is verified by a full decode (`Image.open(...).load()`, see `images._verify_bytes`); for a 1024x1024
PNG that is 4–15 ms of CPU, most of it unfiltering rows and storing pixels nobody looks at. `png_load_succeeds` is
asked after `Image.open` has parsed the header chunks (with their CRCs, exactly as the decode would) and answers True
only where `load()` cannot fail; anything else is answered False and the caller runs `load()`, so the verdict —
accepted or refused, and the error code — is Pillow's by construction. It never refuses on its own.

What `load()` does with a non-interlaced, non-palette PNG (as read in Pillow 13.0: `PngImagePlugin`, `ImageFile` and
`ZipDecode.c`; the property test runs against whichever Pillow is installed), and therefore what is checked here:
- The image data is fed to zlib from the first IDAT on, chunk after chunk while the chunk is IDAT; neither their CRCs
  nor the CRCs of any later chunk are read. Another chunk before the data is complete ends it: "image file is
  truncated". So the data is taken from the contiguous run of IDAT chunks only.
- The decoder stops as soon as the last row is out; whether it met the zlib checksum or data past the last row by
  then depends on how the chunks are cut, so a bad checksum or a corrupt tail may pass or fail. And it only gets
  rows out while input remains: a stream cut after its last pixel bytes (checksum missing) can leave the last row
  inside zlib, "image file is truncated", although zlib alone would inflate it whole. Only the unambiguous case is
  vouched for: the run holds one complete zlib stream, checksum verified (its 4 bytes are never taken before the
  stream's end, so no row is left waiting for input), of exactly the size the header promises (bytes after the
  stream's end are never read, and allowed), and every row's filter type is 0–4 (else "unrecognized data stream
  contents").
- After the data, `load_end` walks the remaining chunks without checking CRCs: a missing IEND, a cut-off chunk header
  or a name that is not four letters/digits/underscores ends the walk and the image is accepted; a chunk whose body
  is cut off is refused; chunks Pillow has a handler for are parsed (and may refuse). Vouched for here: IEND, complete
  IDAT, eXIf and unknown chunks, and tEXt within Pillow's text-memory limit; any other known chunk defers to `load()`.
- zlib-ng inflates here: the same format, faster than the zlib Pillow links (1024x1024: 0.3–0.5 against 1.6–2.9 ms
  for the sandbox's flat picture, 11–13 against 19 ms for a noisy one). The stream must be entirely valid, so the
  two libraries cannot disagree on it.
Interlaced, palette (`Image.load` also refuses a PLTE of more than 256 entries) and animated PNGs are left to
`load()`, and so is everything while ImageFile.LOAD_TRUNCATED_IMAGES is set (the project leaves it off; it makes
Pillow laxer in places and stricter in others). tests/generations/test_png_verdicts.py compares the verdicts with and
without this shortcut on mutated real PNGs."""

from PIL import Image, ImageFile, PngImagePlugin
from zlib_ng import zlib_ng

# Pillow's PNG raw modes (its `_MODES`, palette modes excepted) → bits per pixel in a row. A raw mode not listed here
# (a future Pillow's) defers to `load()`.
_ROW_BITS = {
    "1": 1, "L;2": 2, "L;4": 4, "L": 8, "I;16B": 16, "LA": 16, "RGB": 24, "LA;16B": 32, "RGBA": 32, "RGB;16B": 48,
    "RGBA;16B": 64,
}
_FILTER_TYPES = 5  # none, sub, up, average, paeth
# Inflated 256 KiB in, at most 256 KiB out, at a time. Below glibc's mmap threshold (the forwarder sets 1 MB:
# project/malloc.py) each block comes from the heap and is reused, where a block of a whole image's rows was a fresh
# mapping, faulted in page by page, every time (1.5 against 0.3 ms of CPU for a 1024x1024 flat image). Feeding the
# input in slices keeps zlib's `unconsumed_tail`, copied after every call, small: with the whole stream as input,
# small output blocks made a 2 MB photo-like image cost 10.6 ms instead of 3.5.
_BLOCK_BYTES = 256 * 1024
_INPUT_BYTES = 256 * 1024
# Handlers `load_end` calls after the data that only read the chunk (tEXt also counts its text, checked below).
_READ_ONLY_CHUNKS = {b"IDAT", b"eXIf", b"tEXt"}


def png_load_succeeds(*, image: Image.Image, data: bytes) -> bool:
    """True when `image.load()` certainly succeeds for `image`, just opened by Pillow from `data` (all of the file);
    False when it might not, and the caller must run it."""
    if image.format != "PNG" or ImageFile.LOAD_TRUNCATED_IMAGES or len(image.tile) != 1:
        return False
    codec, extents, offset, rawmode = image.tile[0]
    width, height = image.size
    if (
        codec != "zip" or extents != (0, 0, width, height) or rawmode not in _ROW_BITS
        or image.info.get("interlace") or getattr(image, "custom_mimetype", None) is not None
    ):
        return False
    position, pieces, view = offset - 8, [], memoryview(data)
    while data[position + 4 : position + 8] == b"IDAT":
        end = position + 8 + int.from_bytes(data[position : position + 4])
        if end > len(data):
            return False
        pieces.append(view[position + 8 : end])
        position = end + 4  # past the CRC, which nobody reads
    row = 1 + (width * _ROW_BITS[rawmode] + 7) // 8  # the filter type byte, then the packed pixels
    try:
        complete = _rows_complete(pieces[0] if len(pieces) == 1 else b"".join(pieces), row=row, height=height)
    except zlib_ng.error:
        return False
    return complete and _trailer_accepted(image=image, data=data, position=position)


def _rows_complete(stream: bytes | memoryview, *, row: int, height: int) -> bool:
    """`stream` is one complete zlib stream of `height` rows of `row` bytes, each row's first byte a filter type.
    Inflated a block at a time (see _BLOCK_BYTES), so that the raw rows of a large image are never held whole."""
    inflater, expected, produced = zlib_ng.decompressobj(), row * height, 0
    view, offset, pending = memoryview(stream), 0, b""
    while not inflater.eof:
        if not pending and offset < len(view):
            pending, offset = view[offset : offset + _INPUT_BYTES], offset + _INPUT_BYTES
        # At most one byte more than the rows still missing (that byte shows a stream holding more): zlib-ng sizes
        # its output buffer by this.
        block = inflater.decompress(pending, min(_BLOCK_BYTES, expected - produced + 1))
        pending = inflater.unconsumed_tail
        if not block and not pending and offset >= len(view):
            break  # all input given and nothing more comes out: the stream ends early
        filters = block[-produced % row :: row]  # where the next rows start within this block
        if produced + len(block) > expected or (filters and max(filters) >= _FILTER_TYPES):
            return False
        produced += len(block)
    return inflater.eof and produced == expected


def _trailer_accepted(*, image: Image.Image, data: bytes, position: int) -> bool:
    """What `PngImageFile.load_end` does with the chunks after the image data, for the handlers it cannot fail in."""
    text_memory = getattr(getattr(image, "png", None), "text_memory", None)
    if not isinstance(text_memory, int):
        return False
    while True:
        header = data[position : position + 8]
        name = header[4:]
        # A short header (struct.error) or a bad name (SyntaxError) ends Pillow's walk, and so does IEND.
        if len(header) < 8 or not PngImagePlugin.is_cid(name) or name == b"IEND":
            return True
        end = position + 8 + int.from_bytes(header[:4])
        if end > len(data):
            return False  # "Truncated File Read"
        if name == b"tEXt":
            text_memory += end - position - 8  # at least what Pillow counts: the text after the keyword
            if text_memory > PngImagePlugin.MAX_TEXT_MEMORY:
                return False
        elif name not in _READ_ONLY_CHUNKS and hasattr(PngImagePlugin.PngStream, f"chunk_{name.decode('ascii')}"):
            return False
        position = end + 4
