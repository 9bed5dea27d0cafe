"""P3AR-PKU sample naming (``SsssPpppRrrrUuuuVvvvWwwwXxxxYyyyAaaa``) and its XSet benchmark.

P3AR-PKU is a real-world recording through the film: 22 people in two setups, three cameras, the
60 actions of ``labels/pku_label_name.txt`` (NTU-120 names in the original release's order). A
name carries the setup S (1-2), the person P (1-22), the camera R (1-3), five appearance
attributes of the person (gender U, hairstyle V, glasses W, upper wear X, lower wear Y) and the
action A; every label is the value minus 1. The attributes are those of the person: they do not
change between setups or cameras.

XSet (cross-setup) is the one benchmark: setup 1 trains (2,190 videos of the release's list),
setup 2 validates (1,200); every person appears in both, so identity and attribute accuracies are
closed-set. ``tests/test_pku.py`` reproduces the release's lists from the names.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from utils.errors import UserError

PKU_NAME_RE = re.compile(r"S(\d{3})P(\d{3})R(\d{3})U(\d{3})V(\d{3})W(\d{3})X(\d{3})Y(\d{3})A(\d{3})")
PKU_TRAIN_SETUP = 1  # XSet: setup 1 trains, setup 2 validates
PKU_NUM_ACTIONS = 60
PKU_NUM_PEOPLE = 22
PKU_NUM_CAMERAS = 3
# the five appearance attributes: label name -> (name letter, number of values)
PKU_ATTRIBUTES = {"gender": ("U", 2), "hairstyle": ("V", 5), "glasses": ("W", 2), "upper": ("X", 9),
                  "lower": ("Y", 12)}
# every privacy label of a P3AR-PKU name and its number of classes
PKU_LABELS = {"identity": PKU_NUM_PEOPLE, **{name: count for name, (_, count) in PKU_ATTRIBUTES.items()}}
BENCHMARKS = ("xset",)


class PkuNameError(UserError):
    """A sample name that does not follow the P3AR-PKU pattern."""


@dataclass(frozen=True)
class PkuName:
    """The fields of one P3AR-PKU sample name (all 1-based, as written in the name).

    Args:
        setup: recording setup S.
        person: person P.
        camera: camera R.
        gender: gender U.
        hairstyle: hairstyle V.
        glasses: glasses W.
        upper: upper-body wear X.
        lower: lower-body wear Y.
        action: action class A.
    """

    setup: int
    person: int
    camera: int
    gender: int
    hairstyle: int
    glasses: int
    upper: int
    lower: int
    action: int

    @property
    def name(self) -> str:
        """The canonical 36-character name."""
        return (f"S{self.setup:03d}P{self.person:03d}R{self.camera:03d}U{self.gender:03d}"
                f"V{self.hairstyle:03d}W{self.glasses:03d}X{self.upper:03d}Y{self.lower:03d}"
                f"A{self.action:03d}")

    @property
    def label(self) -> int:
        """The 0-based action label A - 1."""
        return self.action - 1

    @property
    def identity(self) -> int:
        """The 0-based identity label P - 1."""
        return self.person - 1

    @property
    def privacy_labels(self) -> dict[str, int]:
        """Every 0-based privacy label: identity and the five attributes (keys of :data:`PKU_LABELS`)."""
        return {"identity": self.identity, **{name: getattr(self, name) - 1 for name in PKU_ATTRIBUTES}}

    @property
    def attacker_train(self) -> bool:
        """The fresh attacker's half: setup 1 trains it, setup 2 tests it (every person is in both)."""
        return self.setup == PKU_TRAIN_SETUP


def parse_pku_name(name: str) -> PkuName:
    """Parses a P3AR-PKU sample name; a suffix or extension after it is ignored.

    Raises:
        PkuNameError: the name does not start with ``SsssPpppRrrrUuuuVvvvWwwwXxxxYyyyAaaa``.
    """
    match = PKU_NAME_RE.match(os.path.basename(name))
    if match is None:
        raise PkuNameError(f"sample name {name!r} does not follow the P3AR-PKU pattern "
                           "SsssPpppRrrrUuuuVvvvWwwwXxxxYyyyAaaa; rename it or remove it")
    return PkuName(*(int(g) for g in match.groups()))


def is_train(parsed: PkuName, benchmark: str) -> bool:
    """Whether a sample trains under ``benchmark`` (xset: setup 1).

    Raises:
        UserError: an unknown benchmark.
    """
    if benchmark not in BENCHMARKS:
        raise UserError(f"benchmark {benchmark!r} does not exist for dataset 'pku'; choose "
                        f"DATA.BENCHMARK from {BENCHMARKS}")
    return parsed.setup == PKU_TRAIN_SETUP
