"""Sample names of both dataset families, their benchmark splits, split lists and class names.

A name says which family it belongs to: NTU RGB+D (``SsssCcccPpppRrrrAaaa``, :mod:`datasets.ntu`)
or P3AR-PKU (``SsssPpppRrrrUuuuVvvvWwwwXxxxYyyyAaaa``, :mod:`datasets.pku`). Every parsed name
gives the action ``label``, the ``camera``, its ``privacy_labels`` (identity, and on P3AR-PKU the
five appearance attributes) and the fresh attacker's half (``attacker_train``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Union

from datasets import ntu, pku
from datasets.ntu import NtuName, parse_ntu_name
from datasets.pku import PKU_LABELS, PKU_NAME_RE, PkuName, parse_pku_name
from utils.errors import UserError

SampleName = Union[NtuName, PkuName]
DATASETS = ("ntu60", "ntu120", "pku")  # DATA.DATASET choices
BENCHMARKS = {**ntu.BENCHMARKS, "pku": pku.BENCHMARKS}
# the privacy labels the names of each dataset carry (MODEL.PRIVACY_HEADS chooses among them)
DATASET_LABELS = {"ntu60": ("identity",), "ntu120": ("identity",), "pku": tuple(PKU_LABELS)}
PRIVACY_LABELS = tuple(dict.fromkeys(label for labels in DATASET_LABELS.values() for label in labels))


class SampleNameError(UserError):
    """A sample name of neither family."""


class SplitFileError(UserError):
    """A split list or label file that is missing or unreadable."""


def is_sample_name(name: str) -> bool:
    """Whether a file or folder name starts with a sample name of either family."""
    base = os.path.basename(name)
    return bool(PKU_NAME_RE.match(base) or ntu.NTU_NAME_RE.match(base))


def parse_name(name: str) -> SampleName:
    """Parses a sample name of either family; a suffix (``_rgb``) or extension after it is ignored.

    Args:
        name: a sample name or file name such as ``S001C002P003R002A013_rgb.avi``.

    Raises:
        UserError: the name follows neither pattern.
    """
    if PKU_NAME_RE.match(os.path.basename(name)):
        return parse_pku_name(name)
    if ntu.NTU_NAME_RE.match(os.path.basename(name)):
        return parse_ntu_name(name)
    raise SampleNameError(f"sample name {name!r} follows neither the NTU pattern SsssCcccPpppRrrrAaaa nor "
                     "the P3AR-PKU pattern SsssPpppRrrrUuuuVvvvWwwwXxxxYyyyAaaa; rename it or remove it")


def in_dataset(parsed: SampleName, dataset: str) -> bool:
    """Whether a sample belongs to ``dataset`` (its family; ntu60: actions 1..60 of setups 1..17)."""
    if isinstance(parsed, PkuName):
        return dataset == "pku"
    return dataset != "pku" and ntu.in_dataset(parsed, dataset)


def is_train(parsed: SampleName, dataset: str, benchmark: str) -> bool:
    """Whether a sample of ``dataset`` is in the training part of ``benchmark``.

    Raises:
        UserError: an unknown dataset or benchmark.
    """
    if isinstance(parsed, PkuName):
        return pku.is_train(parsed, benchmark)
    return ntu.is_train(parsed, dataset, benchmark)


def read_name_list(path: str | Path) -> list[str]:
    """Reads a split list: one sample name per line (blank lines and ``#`` comments skipped;
    a suffix or extension after the name is stripped).

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
        dataset: ntu60 | ntu120 | pku (ntu60 keeps actions 1..60 of setups 1..17; names of the
            other family are left out).
        benchmark: xsub | xview (ntu60); xsub | xset (ntu120); xset (pku).
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
