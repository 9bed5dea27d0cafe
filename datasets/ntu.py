"""NTU RGB+D sample naming (``SsssCcccPpppRrrrAaaa``), benchmark splits and class names.

The four benchmarks are rules on the name fields; they reproduce the official split lists
exactly (``tests/test_ntu.py`` checks every listed name):

- NTU60-XSub: the 20 training performers of the NTU RGB+D paper, everyone else validates;
- NTU60-XView: cameras 2 and 3 train, camera 1 validates;
- NTU120-XSub: the 53 training performers of the NTU RGB+D 120 paper;
- NTU120-XSet: even setup ids train, odd setup ids validate.

NTU60 is the subset with actions 1..60 recorded in setups 1..17; NTU120 is everything.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from utils.errors import UserError

NTU_NAME_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
NTU60_MAX_ACTION = 60
NTU60_MAX_SETUP = 17

NTU60_XSUB_TRAIN_PERFORMERS = frozenset(
    (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38))
NTU60_XVIEW_TRAIN_CAMERAS = frozenset((2, 3))
NTU120_XSUB_TRAIN_PERFORMERS = frozenset(
    (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50,
     52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95,
     97, 98, 100, 103))

DATASETS = ("ntu60", "ntu120")
BENCHMARKS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}


class NtuNameError(UserError):
    """A sample name that does not follow the NTU pattern ``SsssCcccPpppRrrrAaaa``."""


class SplitFileError(UserError):
    """A split list or label file that is missing or unreadable."""


@dataclass(frozen=True)
class NtuName:
    """The fields of one NTU sample name (all 1-based, as written in the name).

    Args:
        setup: recording setup S.
        camera: camera C.
        performer: performer (subject) P.
        replication: replication R.
        action: action class A.
    """

    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @property
    def name(self) -> str:
        """The canonical 20-character name."""
        return (f"S{self.setup:03d}C{self.camera:03d}P{self.performer:03d}"
                f"R{self.replication:03d}A{self.action:03d}")

    @property
    def label(self) -> int:
        """The 0-based action label A - 1."""
        return self.action - 1

    @property
    def identity(self) -> int:
        """The 0-based identity label P - 1."""
        return self.performer - 1


def parse_name(name: str) -> NtuName:
    """Parses an NTU sample name; a suffix (``_rgb``) or extension (``.avi``) after it is ignored.

    Args:
        name: a sample name or file name such as ``S001C002P003R002A013_rgb.avi``.

    Raises:
        NtuNameError: the name does not start with ``SsssCcccPpppRrrrAaaa``.
    """
    match = NTU_NAME_RE.match(os.path.basename(name))
    if match is None:
        raise NtuNameError(f"sample name {name!r} does not follow the NTU pattern "
                           "SsssCcccPpppRrrrAaaa; rename it or remove it from the data folder")
    return NtuName(*(int(g) for g in match.groups()))


def in_dataset(parsed: NtuName, dataset: str) -> bool:
    """Whether a sample belongs to ``dataset`` (ntu60: actions 1..60 of setups 1..17)."""
    if dataset == "ntu60":
        return parsed.action <= NTU60_MAX_ACTION and parsed.setup <= NTU60_MAX_SETUP
    return True


def is_train(parsed: NtuName, dataset: str, benchmark: str) -> bool:
    """Whether a sample is in the training part of ``dataset``/``benchmark``.

    Raises:
        UserError: an unknown dataset or benchmark (xset exists only for ntu120).
    """
    if benchmark not in BENCHMARKS.get(dataset, ()):
        raise UserError(f"benchmark {benchmark!r} does not exist for dataset {dataset!r}; "
                        f"choose DATA.BENCHMARK from {BENCHMARKS.get(dataset, ())}")
    if benchmark == "xview":
        return parsed.camera in NTU60_XVIEW_TRAIN_CAMERAS
    if benchmark == "xset":
        return parsed.setup % 2 == 0
    performers = NTU60_XSUB_TRAIN_PERFORMERS if dataset == "ntu60" else NTU120_XSUB_TRAIN_PERFORMERS
    return parsed.performer in performers


def read_name_list(path: str | Path) -> list[str]:
    """Reads a split list: one sample name per line (blank lines and ``#`` comments skipped;
    a suffix or extension after the NTU name is stripped).

    Raises:
        SplitFileError: the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise SplitFileError(f"split list {path} not found; fix DATA.TRAIN_FILE / DATA.VAL_FILE")
    names = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(parse_name(line.split()[0]).name)
    return names


def split_names(names: Iterable[str], dataset: str, benchmark: str, train_file: str = "",
                val_file: str = "") -> tuple[list[str], list[str]]:
    """Splits sample names into (train, val) by the benchmark rule.

    Args:
        names: sample names (suffixes/extensions allowed; the canonical names are returned).
        dataset: ntu60 | ntu120 (ntu60 keeps actions 1..60 of setups 1..17).
        benchmark: xsub | xview (ntu60) ; xsub | xset (ntu120).
        train_file: optional split list that replaces the rule for the training part.
        val_file: optional split list that replaces the rule for the validation part.

    Returns:
        Sorted canonical names of the training and validation parts.
    """
    parts: tuple[set[str], set[str]] = (set(), set())
    for name in names:
        parsed = parse_name(name)
        if in_dataset(parsed, dataset):
            parts[0 if is_train(parsed, dataset, benchmark) else 1].add(parsed.name)
    train, val = sorted(parts[0]), sorted(parts[1])
    if train_file:
        train = read_name_list(train_file)
    if val_file:
        val = read_name_list(val_file)
    return train, val


def load_class_names(path: str | Path, num_classes: int) -> list[str]:
    """Reads the first ``num_classes`` class names (one per line) of a label file.

    Raises:
        SplitFileError: the file is missing or holds fewer than ``num_classes`` names.
    """
    path = Path(path)
    if not path.is_file():
        raise SplitFileError(f"label file {path} not found; fix DATA.LABEL_LIST")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) < num_classes:
        raise SplitFileError(f"label file {path} has {len(names)} names, fewer than "
                             f"DATA.NUM_CLASSES = {num_classes}")
    return names[:num_classes]
