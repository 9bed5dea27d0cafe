"""Host allocator settings for training on the CPU.

glibc's ``malloc`` serves blocks above its mmap threshold (128 KiB at start, raised dynamically to
at most 32 MiB) with fresh ``mmap`` pages and gives freed ones back to the kernel at once; free
memory at the top of the heap above the trim threshold is given back too. A training step
allocates and frees the same activation and gradient buffers (several MiB each) every step, so
with the defaults every step page-faults and zeroes them again: for ViT-B/16 (T = 8, bf16 on two
cores) the step spent about 15% of its time there (1.54 s against 1.30 s median, the two settings
alternating in one process). :func:`keep_freed_memory` makes glibc keep freed memory for reuse.
The process then holds its peak heap instead of returning it between steps; a GPU run gains
nothing (its tensors are not host allocations), so the launcher applies this on CPU runs only.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
GLIBC_DEFAULT_BYTES = 128 << 10  # glibc's initial mmap threshold, trim threshold and top pad
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest mmap threshold: smaller blocks come from the heap
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
    values = (MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES, TOP_PAD_BYTES) if keep else (GLIBC_DEFAULT_BYTES,) * 3
    params = (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD)
    applied = all(mallopt(param, value) == 1 for param, value in zip(params, values))  # 1 = success
    if not keep:
        libc.malloc_trim(0)
    return applied
