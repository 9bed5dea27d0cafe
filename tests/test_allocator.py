"""Host allocator settings: freed memory is kept for reuse, and the defaults come back."""
import os
import sys

import pytest
import torch

from utils.allocator import keep_freed_memory

BLOCK_BYTES = 16 << 20  # above glibc's default mmap threshold


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_after_free() -> int:
    block = torch.ones(BLOCK_BYTES // 4)  # touched, so resident
    before_free = _rss_bytes()
    del block
    return before_free - _rss_bytes()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_block_stays_resident_only_when_kept():
    try:
        assert keep_freed_memory(False)
        assert _rss_after_free() >= BLOCK_BYTES // 2  # default: the block goes back to the kernel
        assert keep_freed_memory(True)
        _rss_after_free()  # the heap grows once
        assert _rss_after_free() < BLOCK_BYTES // 2  # kept: freed, still resident, reused
    finally:
        keep_freed_memory(True)
