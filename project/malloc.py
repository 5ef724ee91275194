"""glibc's allocator told to give large blocks back, for processes that handle multi-megabyte buffers in bursts."""

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def large_blocks_returned(*, threshold_bytes: int = 1024 * 1024) -> bool:
    """Serve every allocation of `threshold_bytes` or more with its own mapping, unmapped when freed.

    By default glibc raises its mmap threshold (up to 32 MB) each time a mapped block is freed, after which a
    forwarder's 3 MB answers, their JSON strings and decoded images are carved from the heap arenas of whichever
    thread made them, and what they free stays in the process: at 2,000 calls of 3 MB answers, 328 MB of a 640 MB
    forwarder was free memory glibc kept (`mallinfo2`). An explicit threshold turns the raising off. The cost is a
    fresh mapping per large block (page faults), ~0.1 ms per MB. No library does this; it is one `mallopt` call.
    Returns False where there is no glibc (musl and macOS allocators behave differently and are left alone)."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold_bytes))
