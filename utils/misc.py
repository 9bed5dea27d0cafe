"""Small helpers shared by the launcher and the trainer: seeding, RNG state capture and restore,
running averages, atomic writes, durations and peak memory."""
from __future__ import annotations

import os
import random
import resource
import tempfile
from typing import IO, Any, Callable

import numpy as np
import torch

PIXEL_MAX = 255.0  # the top of the uint8 pixel scale (the project's one definition)
BYTES_PER_MIB = 2 ** 20
KIB_PER_MIB = 2 ** 10  # ru_maxrss is in KiB on Linux


def seed_everything(seed: int) -> None:
    """Seeds python, numpy and torch (all devices).

    Args:
        seed: the seed; the launcher passes ``SEED + rank`` so ranks draw different augmentations.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """Returns the RNG states of python, numpy, torch and CUDA as plain types and tensors,
    so the result can be stored in a checkpoint loadable with ``torch.load(weights_only=True)``."""
    version, mt_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(mt_state), "gauss": gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restores the RNG states written by :func:`capture_rng_state`.

    Args:
        state: the dict returned by :func:`capture_rng_state` (possibly after a checkpoint round trip).
    """
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


class AverageMeter:
    """Running value, sum and weighted average of a scalar (e.g. a loss over an epoch)."""

    def __init__(self) -> None:
        self.val = 0.0
        self.sum = 0.0
        self.count = 0

    def update(self, val: float, n: int = 1) -> None:
        """Adds ``val`` observed ``n`` times."""
        self.val = val
        self.sum += val * n
        self.count += n

    @property
    def avg(self) -> float:
        """The average so far (0 before the first update)."""
        return self.sum / self.count if self.count else 0.0


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = False) -> None:
    """Writes a file atomically: a temporary file in the same folder, flushed, synced, renamed.

    A reader sees the old file or the complete new one, never a partial write.

    Args:
        path: destination file.
        write: called with the open temporary file; writes the content.
        binary: open the temporary file in binary mode.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(text))


def format_seconds(seconds: float) -> str:
    """Formats a duration as ``H:MM:SS``."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def memory_mib(device: torch.device) -> float:
    """Peak memory of this process in MiB: allocated GPU memory on CUDA, resident set size on CPU.

    Args:
        device: the compute device.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / BYTES_PER_MIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB
