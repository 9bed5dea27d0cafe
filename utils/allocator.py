"""Host allocator settings for training on the CPU.

glibc's ``malloc`` serves blocks above its mmap threshold (128 KiB at start, raised dynamically to
at most 32 MiB) with fresh ``mmap`` pages and gives them back to the kernel when they are freed;
free memory at the top of the heap above the trim threshold is given back too. A training step
allocates and frees the same activation and gradient buffers (MiB to GiB) every step, so with the
defaults every step page-faults and zeroes them again. :func:`keep_freed_memory` serves every
block from the heap (no ``mmap``) and keeps freed memory for reuse. Measured on ViT-B/16, T = 8,
bf16, two cores, the settings alternating in one process (``tools/benchmark.py --what train``,
``train.host_allocator``): 1.59 -> 1.32 s per step at one clip; at four clips, whose largest
activations (39 MB) are above the largest mmap threshold, the heap-only setting gains another
7% (5.73 -> 5.36 s). The process then holds its peak heap instead of returning it between steps;
a GPU run gains nothing (its tensors are not host allocations), so the launcher applies this on
CPU runs only.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
GLIBC_DEFAULT_BYTES = 128 << 10  # glibc's initial mmap threshold, trim threshold and top pad
GLIBC_DEFAULT_MMAP_MAX = 65536  # glibc's default limit of simultaneous mmap'd blocks
TRIM_THRESHOLD_BYTES = 1 << 30  # free heap top kept before giving memory back to the kernel
TOP_PAD_BYTES = 64 << 20  # extra heap requested at each growth, so growth is rare


def keep_freed_memory(keep: bool = True) -> bool:
    """Tells glibc to keep freed memory for reuse instead of returning it to the kernel.

    Args:
        keep: False sets glibc's initial values back and returns the free memory (the
            benchmark compares both).

    Returns:
        True when the settings were applied; False where the C library is not glibc (macOS,
        musl, Windows), which is logged and otherwise harmless.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        logger.info("allocator: %s has no mallopt; keeping the C library's defaults", name)
        return False
    if keep:  # no mmap'd blocks: everything from the heap, which keeps up to 1 GiB free at its top
        settings = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: TRIM_THRESHOLD_BYTES, M_TOP_PAD: TOP_PAD_BYTES}
    else:
        settings = {M_MMAP_MAX: GLIBC_DEFAULT_MMAP_MAX, M_MMAP_THRESHOLD: GLIBC_DEFAULT_BYTES,
                    M_TRIM_THRESHOLD: GLIBC_DEFAULT_BYTES, M_TOP_PAD: GLIBC_DEFAULT_BYTES}
    applied = all(mallopt(param, value) == 1 for param, value in settings.items())  # 1 = success
    if not keep:
        libc.malloc_trim(0)
    return applied
