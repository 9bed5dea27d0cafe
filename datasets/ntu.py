"""NTU RGB+D sample naming (``SsssCcccPpppRrrrAaaa``) and its benchmark rules.

The four benchmarks are rules on the name fields; they reproduce the official split lists
exactly (``tests/test_ntu.py`` checks every listed name):

- NTU60-XSub: the 20 training performers of the NTU RGB+D paper, everyone else validates;
- NTU60-XView: cameras 2 and 3 train, camera 1 validates;
- NTU120-XSub: the 53 training performers of the NTU RGB+D 120 paper;
- NTU120-XSet: even setup ids train, odd setup ids validate.

NTU60 is the subset with actions 1..60 recorded in setups 1..17; NTU120 is everything. The
splitting and the list files of both dataset families are in :mod:`datasets.names`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

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

BENCHMARKS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}


class NtuNameError(UserError):
    """A sample name that does not follow the NTU pattern ``SsssCcccPpppRrrrAaaa``."""


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

    @property
    def privacy_labels(self) -> dict[str, int]:
        """Every 0-based privacy label of the name: the identity."""
        return {"identity": self.identity}

    @property
    def attacker_train(self) -> bool:
        """The fresh attacker's half: odd replications train it, even ones test it (docs/privacy.md)."""
        return self.replication % 2 == 1


def parse_ntu_name(name: str) -> NtuName:
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
