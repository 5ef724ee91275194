#!/usr/bin/env python
"""What verifying one PNG output costs, next to Pillow's full decode of the same file in the same run.

The forwarder verifies every output (`generations.images.image_verify`: for PNGs a check that vouches for Pillow's
verdict without decoding the pixels, then the SHA-256) on its worker threads; the drain figure (`bench/drain.py`)
depends on it staying cheap. The baseline is what the check stands in for: `Image.open(...).load()`.

Two files: the AIHubMix sandbox's 1024x1024 output (flat colour and text, `compress_level=1`, a `tEXt` chunk after
the image data — what the drain bench verifies) and a 1024x1024 photo-like PNG (noise over a gradient, Pillow's
default compression: closer to a real upstream answer, whose inflating costs more). Each call is timed in CPU time
of the calling thread (a shared machine's load stretches wall time, not this), the two sides interleaved; prints
p50/p90/p99 in ms and the ratio of medians. The allocator is set as the forwarder sets it (`project/malloc.py`: large
blocks are fresh mappings, so an output buffer above 1 MB costs its page faults every time, as it does there).

    .venv/bin/python bench/png_check.py [--rounds 300]
"""

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from aihubmix_sandbox.render import image_render  # noqa: E402
from generations.images import image_verify  # noqa: E402
from project.malloc import large_blocks_returned  # noqa: E402

MAX_PIXELS = 50_000_000


def photo_like() -> bytes:
    noise = Image.effect_noise((1024, 1024), 40).convert("RGB")
    gradient = Image.linear_gradient("L").resize((1024, 1024)).convert("RGB")
    buffer = io.BytesIO()
    Image.blend(noise, gradient, 0.5).save(buffer, format="PNG")
    return buffer.getvalue()


def pillow_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def timed(call: Callable[[], object]) -> float:
    start = time.thread_time_ns()
    call()
    return (time.thread_time_ns() - start) / 1e6


def percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {statistics.median(samples):6.3f}  p90 {cuts[89]:6.3f}  p99 {cuts[98]:6.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    large_blocks_returned()
    files = {
        "sandbox 1024x1024": image_render(prompt="a lighthouse", model="bench", width=1024, height=1024, index=0),
        "photo-like 1024x1024": photo_like(),
    }
    for name, data in files.items():
        check = lambda data=data: image_verify(data, max_pixels=MAX_PIXELS)  # noqa: E731
        decode = lambda data=data: pillow_decode(data)  # noqa: E731
        for _ in range(20):  # warm caches and lazy imports
            check(), decode()
        checks, decodes = [], []
        for _ in range(args.rounds):
            checks.append(timed(check))
            decodes.append(timed(decode))
        ratio = statistics.median(checks) / statistics.median(decodes)
        print(f"{name} ({len(data) // 1024} KB), CPU ms over {args.rounds} rounds")
        print(f"  image_verify       {percentiles(checks)}")
        print(f"  Pillow open+load   {percentiles(decodes)}")
        print(f"  check / decode     {ratio:.2f}")


if __name__ == "__main__":
    main()
