"""Host allocator settings: with glibc's defaults a large freed block goes back to the kernel,
after ``keep_freed_memory`` it stays resident for reuse (each case in a fresh process)."""
import platform
import subprocess
import sys

import pytest

BLOCK_BYTES = 64 << 20  # above glibc's largest mmap threshold (32 MiB)
PROBE = f"""
import os, sys, torch
from utils.allocator import keep_freed_memory

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

if sys.argv[1] == "kept":
    assert keep_freed_memory()
for _ in range(3):  # the heap grows on the first round only
    block = torch.ones({BLOCK_BYTES} // 4)  # touched, so resident
    before_free = rss()
    del block
    released = before_free - rss()
print(released)
"""


def _released_bytes(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_freed_block_stays_resident_only_when_kept():
    assert _released_bytes("default") >= BLOCK_BYTES // 2
    assert _released_bytes("kept") < BLOCK_BYTES // 2
