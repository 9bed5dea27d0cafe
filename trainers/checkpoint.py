"""Checkpoints: one plain dict holding the whole training state, written atomically, loadable with
``torch.load(weights_only=True)``; resume-file selection; original-release files converted."""
from __future__ import annotations

import logging
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from utils.errors import UserError
from utils.misc import atomic_write

logger = logging.getLogger(__name__)

LAST_NAME = "last.pth"
BEST_NAME = "best.pth"
EPOCH_PATTERN = re.compile(r"^ckpt_epoch_(\d+)\.pth$")
FORMAT_VERSION = 1  # bumped when the layout of the dict changes


class CheckpointError(UserError):
    """A checkpoint file that is missing, unreadable or of the wrong kind."""


def epoch_checkpoint_name(epoch: int) -> str:
    """File name of the periodic checkpoint written after ``epoch`` completed epochs."""
    return f"ckpt_epoch_{epoch}.pth"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Writes ``state`` to ``path`` atomically: temporary file in the same folder, flush, fsync,
    ``os.replace``. A crash leaves either the old file or the new one, never a partial file.

    Args:
        state: the checkpoint dict (tensors and plain python types only).
        path: destination file.
    """
    atomic_write(path, lambda f: torch.save(state, f), binary=True)


def load_checkpoint(path: str | os.PathLike, allow_pickle: bool = False) -> dict[str, Any]:
    """Reads a checkpoint to CPU.

    Files written by this project load with ``weights_only=True``. A file of the original release
    (pickled yacs config) is read through :mod:`models.convert` only with ``allow_pickle``, and its
    model weights are converted to this project's names; such a dict carries ``"original": True``.

    Args:
        path: checkpoint file.
        allow_pickle: opt-in to unpickle original-release files (unpickling runs code from the file).

    Raises:
        CheckpointError: the file is missing or unreadable.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path} (pass an existing .pth file or 'auto')")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return _load_original(path, allow_pickle)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}); "
                              "pass a complete file written by torch.save") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    if "format_version" not in state:
        return _as_original(path, state)
    return state


def _as_original(path: str, state: dict[str, Any]) -> dict[str, Any]:
    from models.convert import convert_original_state_dict, extract_state_dict, is_original_state_dict

    weights = extract_state_dict(state)
    if not weights or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"checkpoint {path} holds no model weights (expected a 'model' state dict)")
    if is_original_state_dict(weights):
        logger.info("converting original-release weights of %s to this project's names", path)
        weights = convert_original_state_dict(weights)
    return {"model": weights, "original": True}


def _load_original(path: str, allow_pickle: bool) -> dict[str, Any]:
    from models.convert import load_checkpoint_file

    try:
        state = load_checkpoint_file(path, allow_pickle)
    except UserError:
        raise
    except Exception as exc:  # an arbitrary pickle can fail in any way; report it as one line
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}); "
                              "pass a file written by this project or the original release") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    return _as_original(path, state)


def find_latest_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest complete checkpoint in ``output_dir`` (``last.pth`` or ``ckpt_epoch_N.pth``,
    latest modification first, then the higher epoch). Temporary files of an interrupted save are
    never chosen, since saves only ever rename complete files into these names."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    candidates = [p for p in folder.iterdir() if p.name == LAST_NAME or EPOCH_PATTERN.match(p.name)]
    if not candidates:
        return None

    def key(path: Path) -> tuple[float, int]:
        match = EPOCH_PATTERN.match(path.name)
        return path.stat().st_mtime, int(match.group(1)) if match else -1

    return str(max(candidates, key=key))


def prune_temporaries(output_dir: str | os.PathLike) -> None:
    """Removes temporary files left by an interrupted save (rank 0 only)."""
    folder = Path(output_dir)
    if folder.is_dir():
        for path in folder.glob(".tmp_*.pth"):
            path.unlink(missing_ok=True)
