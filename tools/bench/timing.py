"""Timing and memory primitives of the benchmark: device-synchronised wall (and CPU) times, and
exact live-tensor memory on every device."""
from __future__ import annotations

import contextlib
import resource
import time
import weakref
from typing import Any, Callable, Iterator

import cv2
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def synchronize(device: torch.device) -> None:
    """Waits for queued device work (no-op on CPU).

    Args:
        device: the device to wait for.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, reps: int, warmup: int) -> list[float]:
    """Seconds of each of ``reps`` calls of ``fn`` after ``warmup`` untimed calls.

    Args:
        fn: the call to time.
        device: synchronised after every call.
        reps: timed calls.
        warmup: untimed calls first.
    """
    return time_call_cpu(fn, device, reps, warmup)[0]


def time_call_cpu(fn: Callable[[], Any], device: torch.device, reps: int,
                  warmup: int) -> tuple[list[float], list[float]]:
    """Like :func:`time_call`, also returning the process CPU seconds (all threads) of each call.

    On a shared CPU, wall time grows with the other jobs' load while the CPU time of this process
    stays close to the work done, so ratios of CPU times (MFU on CPU) survive a busy machine.

    Args:
        fn: the call to time.
        device: synchronised after every call.
        reps: timed calls.
        warmup: untimed calls first.

    Returns:
        ``(wall seconds, CPU seconds)`` of each timed call.
    """
    for _ in range(warmup):
        fn()
    synchronize(device)
    walls, cpus = [], []
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        synchronize(device)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return walls, cpus


class LiveTensorMemory(TorchDispatchMode):
    """Tracks the bytes of tensor storages created under it and still alive (and their peak).

    Works on every device (it follows storages through weak references), so it gives CPU runs the
    allocation figures that ``torch.cuda.max_memory_allocated`` gives on CUDA.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def reset_peak(self) -> None:
        """Restarts the peak at the current live bytes."""
        self.peak = self.current

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or tensor.is_meta:
                continue
            storage = tensor.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if key and nbytes and key not in self.live:
                self.live[key] = nbytes
                self.current += nbytes
                self.peak = max(self.peak, self.current)
                weakref.finalize(storage, self._free, key)
        return out


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Runs the block as a loader worker does: one torch and one opencv thread."""
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
