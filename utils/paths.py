"""Paths: the project root, config paths resolved against it, the synthetic set's cache folder."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from yacs.config import CfgNode

from utils.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def resolve_path(path: str) -> str:
    """Resolves a config path: absolute, ``~``-relative, or relative to the working directory,
    falling back to the project root (so shipped files such as labels/ work from anywhere)."""
    if not path:
        return path
    expanded = Path(os.path.expanduser(path))
    if expanded.is_absolute() or expanded.exists():
        return str(expanded)
    shipped = PROJECT_ROOT / expanded
    return str(shipped) if shipped.exists() else str(expanded)


def synthetic_cache_dir(cfg: CfgNode) -> Path:
    """The folder the synthetic set of ``cfg`` lives in (one folder per generator setting): LPS-NTU,
    or P3AR-PKU for ``DATA.DATASET pku`` (whose names have no replication field)."""
    syn = cfg.DATA.SYNTHETIC
    base = syn.CACHE or os.environ.get("LPS_HAR_CACHE") or os.path.join("~", ".cache", "lps_har")
    family, replications = ("pku", "") if cfg.DATA.DATASET == "pku" else ("ntu", f"_R{syn.NUM_REPLICATIONS}")
    name = (f"synth_{family}_s{syn.SEED}_px{syn.SIZE}_f{syn.NUM_FRAMES}_a{syn.NUM_ACTIONS}"
            f"_p{syn.NUM_PERFORMERS}_S{syn.NUM_SETUPS}_C{syn.NUM_CAMERAS}{replications}"
            f"{'' if syn.DEVICE == 'film' else '_' + syn.DEVICE}_l{syn.LPS_LEVEL}")
    return Path(os.path.expanduser(base)) / name


def ensure_writable_folder(path: str, what: str) -> None:
    """Creates ``path`` if needed and checks that files can be written in it.

    Args:
        path: the folder.
        what: how the user named it (for the message), e.g. ``--output``.

    Raises:
        UserError: the folder cannot be created or written (a read-only or virtual file system,
            a parent that is a file, no permission).
    """
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"{what} {path} is not a writable folder ({reason}); pass a folder you can "
                        "write to") from None
