"""Checkpoints: one plain dict holding the whole training state, written atomically, loadable with
``torch.load(weights_only=True)``; the saver that keeps ``best.pth`` and the periodic files as hard
links of the completed ``last.pth`` and prunes old periodic files; resume-file selection;
original-release files converted.

Every file is read by :func:`models.convert.load_checkpoint_file` and every failure is a
:class:`models.convert.CheckpointError` (``models/`` never imports this package, so the reader
lives there).

Crash consistency: ``last.pth`` is the commit point of a save. It records in ``links`` the names
that must be hard links (or copies) of it; after a kill between its rename and the links,
:meth:`CheckpointSaver.repair` recreates them at the next start.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.convert import (CheckpointError, convert_original_state_dict, extract_state_dict,
                            is_original_state_dict, load_checkpoint_file)
from utils.misc import atomic_write

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"  # the resolved config the launcher writes into every run folder
LAST_NAME = "last.pth"
BEST_NAME = "best.pth"
EPOCH_PATTERN = re.compile(r"^ckpt_epoch_(\d+)\.pth$")
TEMP_GLOB = ".tmp_*.pth"  # temporaries of atomic_write and of the link step
LINK_TEMP_PREFIX = ".tmp_link_"
BYTES_PER_MB = 1e6
MAX_REASON = 120  # characters of the system's reason quoted in a write error
LINKS_KEY = "links"  # names that must be hard links (or copies) of the checkpoint holding them
FORMAT_VERSION = 2  # 2: ``links`` added, ``sampler`` removed; version 1 files still load

__all__ = ["BEST_NAME", "CheckpointError", "CheckpointSaver", "FORMAT_VERSION", "LAST_NAME",
           "LINKS_KEY", "epoch_checkpoint_name", "find_latest_checkpoint", "link_or_copy",
           "load_checkpoint", "load_model_weights", "prune_temporaries", "save_checkpoint"]


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
    try:
        atomic_write(path, lambda f: torch.save(state, f), binary=True)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
        raise CheckpointWriteError(_write_failure(path, state, exc)) from None


class CheckpointWriteError(CheckpointError):
    """A checkpoint that could not be written (full disk, unwritable folder); the previous file
    of that name is left as it was."""


def _tensor_bytes(value: Any) -> int:
    """Bytes of the tensors inside a nested checkpoint value."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _write_failure(path: str | os.PathLike, state: dict[str, Any], exc: BaseException) -> str:
    """One line: which file could not be written, the free space against what it needs."""
    folder = os.path.dirname(os.path.abspath(path))
    free = shutil.disk_usage(folder).free if os.path.isdir(folder) else 0
    reason = " ".join(str(exc).split())[:MAX_REASON]
    return (f"cannot write checkpoint {path} ({type(exc).__name__}: {reason}); {free / BYTES_PER_MB:.0f} MB "
            f"free in {folder}, the checkpoint needs about {_tensor_bytes(state) / BYTES_PER_MB:.0f} MB: "
            "free space there or pass --output on a disk with room (the previous file is kept)")


def load_checkpoint(path: str | os.PathLike, allow_pickle: bool = False, mmap: bool = False) -> dict[str, Any]:
    """Reads a checkpoint to CPU.

    Files written by this project (they hold ``format_version``) come back as written. Any other
    dict is taken as model weights (an original-release file needs ``allow_pickle`` because it
    pickles its yacs config); original-release names are converted to this project's, and the
    dict returned is ``{"model": weights, "original": True}``.

    Args:
        path: checkpoint file.
        allow_pickle: opt-in to unpickle original-release files (unpickling runs code from the file).
        mmap: map the tensors instead of reading them (see :func:`models.convert.load_checkpoint_file`).

    Raises:
        CheckpointError: the file is missing, unreadable or holds no model weights.
    """
    path = str(path)
    state = load_checkpoint_file(path, allow_pickle, mmap=mmap)
    if "format_version" in state:
        return state
    weights = extract_state_dict(state)
    if not weights or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"checkpoint {path} holds no model weights (expected a 'model' state dict); "
                              "pass a file written by this project or the original release")
    if is_original_state_dict(weights):
        logger.info("converting original-release weights of %s to this project's names", path)
        weights = convert_original_state_dict(weights)
    return {"model": weights, "original": True}


def load_model_weights(model: nn.Module, weights: dict[str, torch.Tensor], path: str) -> None:
    """``model.load_state_dict(weights)`` (strict) with a one-line error naming the file, what does
    not fit, and where the config that wrote the checkpoint is.

    Args:
        model: the unwrapped model.
        weights: its state dict from a checkpoint.
        path: the checkpoint (for the message).

    Raises:
        CheckpointError: the weights do not fit the model.
    """
    own = model.state_dict()
    mismatched = [k for k in own if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    if mismatched or missing or unexpected:
        parts = []
        if mismatched:
            key = mismatched[0]
            parts.append(f"{len(mismatched)} tensors of another shape (first {key}: "
                         f"{list(weights[key].shape)} in the file, {list(own[key].shape)} here)")
        if missing:
            parts.append(f"{len(missing)} missing (first {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first {unexpected[0]})")
        written_by = os.path.join(os.path.dirname(os.path.abspath(path)), CONFIG_NAME)
        where = (f"the config that wrote it is {written_by}" if os.path.isfile(written_by)
                 else "the config that wrote it is stored in the file (its 'config' entry)")
        raise CheckpointError(f"checkpoint {path} does not fit the model of this config: "
                              f"{'; '.join(parts)}; {where}: pass that --config (or the same "
                              "MODEL.ARCH / MODEL.CUSTOM sizes)")
    model.load_state_dict(weights)


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> bool:
    """Makes ``dst`` a hard link of ``src`` (``os.link`` to a temporary name, then ``os.replace``),
    or an atomic copy where the file system has no hard links. Either way ``dst`` is replaced in
    one step: a reader sees the old file or the new one.

    Args:
        src: the complete file.
        dst: the name to give it (same folder).

    Returns:
        True for a hard link, False for a copy.
    """
    src, dst = str(src), str(dst)
    if os.path.exists(dst) and os.path.samefile(src, dst):
        return True  # already linked; renaming a link onto itself would keep the temporary
    tmp = os.path.join(os.path.dirname(dst), LINK_TEMP_PREFIX + os.path.basename(dst))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.link(src, tmp)
    except OSError as exc:  # no hard links here (FAT, some network file systems, another device)
        logger.debug("hard link %s -> %s failed (%s): copying", src, dst, exc)
        with open(src, "rb") as source:
            atomic_write(dst, lambda f: shutil.copyfileobj(source, f), binary=True)
        return False
    os.replace(tmp, dst)
    return True


class CheckpointSaver:
    """Saves the training state as ``last.pth`` and keeps ``best.pth`` and ``ckpt_epoch_N.pth`` as
    hard links of it (timm's saver); keeps the newest ``keep`` periodic files.

    A save counts once ``last.pth`` is renamed into place; it records the names it owes in
    ``links``, so :meth:`repair` can finish a save that a kill interrupted.

    Args:
        output_dir: the run folder.
        keep: periodic files kept, newest epochs first (``SAVE_KEEP``; 0 keeps all).
    """

    def __init__(self, output_dir: str | os.PathLike, keep: int = 0) -> None:
        self.folder = Path(output_dir)
        self.keep = keep

    @property
    def last_path(self) -> Path:
        """The checkpoint every save writes."""
        return self.folder / LAST_NAME

    def save(self, state: dict[str, Any], *, epoch: int, is_best: bool, periodic: bool) -> None:
        """Writes ``state`` to ``last.pth``, then the links it owes, then prunes.

        Args:
            state: the checkpoint dict (without ``links``).
            epoch: completed epochs (names the periodic file).
            is_best: ``best.pth`` becomes this checkpoint.
            periodic: ``ckpt_epoch_{epoch}.pth`` becomes this checkpoint.
        """
        links = ([BEST_NAME] if is_best else []) + ([epoch_checkpoint_name(epoch)] if periodic else [])
        save_checkpoint({**state, LINKS_KEY: links}, self.last_path)
        self._complete(links)
        logger.info("saved %s (epoch %d%s)", self.last_path, epoch, "".join(f", {n}" for n in links))

    def repair(self) -> list[str]:
        """Finishes an interrupted save: makes every name that ``last.pth`` records a link of it
        again (names already linked are left alone; where hard links fail they are copied again)
        and prunes. Idempotent; call on rank 0 before training.

        Returns:
            The names that ``last.pth`` owes (now in place); empty without ``last.pth``.
        """
        if not self.last_path.is_file():
            return []
        links = list(load_checkpoint(self.last_path, mmap=True).get(LINKS_KEY, []))
        missing = [name for name in links if not (self.folder / name).exists()]
        if missing:
            logger.warning("the last save was interrupted: recreating %s from %s", ", ".join(missing),
                           self.last_path)
        self._complete(links)
        return links

    def _complete(self, links: list[str]) -> None:
        for name in links:
            link_or_copy(self.last_path, self.folder / name)
        self._prune()

    def _prune(self) -> None:
        """Removes the periodic files beyond the newest ``keep`` epochs."""
        if self.keep <= 0:
            return
        periodic = sorted((int(m.group(1)), path) for path in self.folder.iterdir()
                          if (m := EPOCH_PATTERN.match(path.name)))
        for _, path in periodic[:-self.keep]:
            path.unlink(missing_ok=True)
            logger.info("removed %s (SAVE_KEEP %d)", path, self.keep)


def find_latest_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest complete checkpoint in ``output_dir`` (``last.pth`` or ``ckpt_epoch_N.pth``,
    latest modification first, then ``last.pth``, then the higher epoch; hard links share the
    modification time). Temporary files of an interrupted save are never chosen, since saves
    only ever rename complete files into these names."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    candidates = [p for p in folder.iterdir() if p.name == LAST_NAME or EPOCH_PATTERN.match(p.name)]
    if not candidates:
        return None

    def key(path: Path) -> tuple[float, bool, int]:
        match = EPOCH_PATTERN.match(path.name)
        return path.stat().st_mtime, path.name == LAST_NAME, int(match.group(1)) if match else -1

    return str(max(candidates, key=key))


def prune_temporaries(output_dir: str | os.PathLike) -> None:
    """Removes temporary files left by an interrupted save (rank 0 only)."""
    folder = Path(output_dir)
    if folder.is_dir():
        for path in folder.glob(TEMP_GLOB):
            path.unlink(missing_ok=True)
