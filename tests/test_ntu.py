"""NTU naming, the four benchmark rules against the official lists, split lists, class names."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from datasets.names import SampleNameError, load_class_names, parse_name, split_names
from datasets.ntu import NTU120_XSUB_TRAIN_PERFORMERS
from utils.paths import resolve_path

OFFICIAL = Path(__file__).parent / "data" / "ntu"
BENCHMARKS = [("ntu60", "xsub", "NTU60_XSub"), ("ntu60", "xview", "NTU60_XView"),
              ("ntu120", "xsub", "NTU120_XSub"), ("ntu120", "xset", "NTU120_XSet")]


def _official(stem: str, part: str) -> list[str]:
    with gzip.open(OFFICIAL / f"{stem}_{part}.txt.gz", "rt") as f:
        return [line.strip() for line in f if line.strip()]


def test_parse_name_fields_suffix_and_labels():
    parsed = parse_name("S017C003P020R002A060_rgb.avi")
    assert (parsed.setup, parsed.camera, parsed.performer, parsed.replication, parsed.action) == (
        17, 3, 20, 2, 60)
    assert parsed.name == "S017C003P020R002A060"
    assert (parsed.label, parsed.identity) == (59, 19)
    assert parse_name("/some/dir/S001C001P001R001A001.mp4").name == "S001C001P001R001A001"


def test_parse_name_rejects_other_names():
    with pytest.raises(SampleNameError, match="clip_0001"):
        parse_name("clip_0001.mp4")


@pytest.mark.parametrize("dataset,benchmark,stem", BENCHMARKS)
def test_benchmark_rules_reproduce_official_lists(dataset, benchmark, stem):
    train, val = _official(stem, "train"), _official(stem, "val")
    rule_train, rule_val = split_names(train + val, dataset, benchmark)
    assert rule_train == sorted(train)
    assert rule_val == sorted(val)


def test_ntu120_xsub_has_53_training_performers():
    assert len(NTU120_XSUB_TRAIN_PERFORMERS) == 53


def test_ntu60_drops_ntu120_only_samples():
    names = ["S001C001P001R001A060", "S001C001P001R001A061", "S018C001P001R001A001"]
    train, val = split_names(names, "ntu60", "xsub")
    assert train == ["S001C001P001R001A060"] and val == []


def test_split_files_override_the_rule(tmp_path):
    train_file = tmp_path / "train.txt"
    train_file.write_text("S002C001P003R001A001_rgb\n\n# comment\nS001C001P001R001A002\n")
    names = ["S001C001P001R001A001", "S002C001P003R001A001"]
    train, val = split_names(names, "ntu120", "xset", train_file=str(train_file))
    assert train == ["S002C001P003R001A001", "S001C001P001R001A002"]
    assert val == ["S001C001P001R001A001"]


def test_class_names_from_shipped_label_file():
    names = load_class_names(resolve_path("labels/ntu120_label_name.txt"), 5)
    assert names[0] == "drink water" and len(names) == 5
    assert len(load_class_names(resolve_path("labels/ntu120_label_name.txt"), 120)) == 120
