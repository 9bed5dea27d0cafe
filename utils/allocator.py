"""Host allocator settings for training on the CPU.

glibc's ``malloc`` serves blocks above its mmap threshold (128 KiB at start, raised dynamically to
at most 32 MiB) with fresh ``mmap`` pages and gives them back to the kernel when they are freed;
free memory at the top of the heap above the trim threshold is given back too. A training step
allocates and frees the same activation and gradient buffers (MiB to GiB) every step, so with the
defaults every step page-faults and zeroes them again. :func:`keep_freed_memory` serves every
block from the heap (no ``mmap``) and keeps freed memory for reuse. Measured on ViT-B/16, T = 8,
bf16, two cores (``tools/benchmark.py --what train``, ``train.host_allocator``: glibc's defaults
first, then these settings, in one fresh process): 1.85 -> 1.36 s per step at one clip (fp32:
4.97 -> 4.64 s). At four clips, whose largest activations (39 MB) are above glibc's largest mmap
threshold, serving them from the heap too gained another 7% over a 32 MiB threshold (5.73 ->
5.36 s, alternating in one process). The process then holds its peak heap instead of returning
it between steps; a GPU run gains nothing (its tensors are not host allocations), so the launcher
applies this on CPU runs only. Data-loader workers forked after it inherit the settings; each then
holds its own peak heap (a few items and one collated batch) between batches.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
M_TOP_PAD = -2
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 1 << 30  # free heap top kept before giving memory back to the kernel
TOP_PAD_BYTES = 64 << 20  # extra heap requested at each growth, so growth is rare


def keep_freed_memory() -> bool:
    """Tells glibc to serve every block from the heap and keep freed memory for reuse.

    Returns:
        True when every setting was applied; False where the C library is not glibc (macOS,
        musl, Windows) or refused one, which is logged and otherwise harmless.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        logger.info("allocator: %s has no mallopt; keeping the C library's defaults", name)
        return False
    # no mmap'd blocks: everything comes from the heap, which keeps up to 1 GiB free at its top
    settings = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: TRIM_THRESHOLD_BYTES, M_TOP_PAD: TOP_PAD_BYTES}
    refused = [param for param, value in settings.items() if mallopt(param, value) != 1]  # 1 = success
    if refused:
        logger.info("allocator: mallopt of %s refused parameters %s; keeping their defaults", name, refused)
    return not refused
