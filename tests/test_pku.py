"""P3AR-PKU naming and the XSet benchmark against the original release's lists."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from datasets.names import SampleNameError, load_class_names, parse_name, split_names
from datasets.pku import PKU_ATTRIBUTES, PKU_LABELS, PkuName
from utils.paths import resolve_path

OFFICIAL = Path(__file__).parent / "data" / "pku"


def _official(part: str) -> list[str]:
    with gzip.open(OFFICIAL / f"pku_XSet_{part}.txt.gz", "rt") as f:
        return [line.strip() for line in f if line.strip()]


def test_parse_fields_labels_and_canonical_name():
    parsed = parse_name("S002P021R003U002V005W001X009Y012A060.mp4")
    assert isinstance(parsed, PkuName)
    assert (parsed.setup, parsed.person, parsed.camera, parsed.action) == (2, 21, 3, 60)
    assert parsed.name == "S002P021R003U002V005W001X009Y012A060"
    assert parsed.label == 59
    assert parsed.privacy_labels == {"identity": 20, "gender": 1, "hairstyle": 4, "glasses": 0,
                                     "upper": 8, "lower": 11}
    assert not parsed.attacker_train and parse_name(parsed.name.replace("S002", "S001")).attacker_train


def test_ntu_and_pku_names_are_told_apart():
    assert parse_name("S001C002P003R002A013").privacy_labels == {"identity": 2}
    with pytest.raises(SampleNameError, match="P3AR-PKU pattern"):
        parse_name("S001P001R001A001")


def test_xset_rule_reproduces_the_release_lists_exactly():
    train, val = _official("train"), _official("val")
    assert (len(train), len(val)) == (2190, 1200)
    rule_train, rule_val = split_names(train + val, "pku", "xset")
    assert rule_train == sorted(train) and rule_val == sorted(val)
    # NTU names in the same folder are not P3AR-PKU samples, and P3AR-PKU names are not NTU ones
    assert split_names(train + ["S002C001P001R001A001"], "pku", "xset")[1] == []
    assert split_names(train + ["S002C001P001R001A001"], "ntu120", "xset") == (["S002C001P001R001A001"], [])


def test_release_lists_have_every_person_in_both_setups_and_fixed_attributes():
    names = [parse_name(n) for n in _official("train") + _official("val")]
    for label, classes in PKU_LABELS.items():
        values = {p.privacy_labels[label] for p in names}
        assert values == set(range(classes)), label
    assert {p.identity for p in names if p.setup == 1} == {p.identity for p in names if p.setup == 2}
    attributes = {}
    for p in names:
        person = tuple(p.privacy_labels[a] for a in PKU_ATTRIBUTES)
        assert attributes.setdefault(p.identity, person) == person


def test_class_names_are_the_release_order():
    names = load_class_names(resolve_path("labels/pku_label_name.txt"), 60)
    assert names[:3] == ["drink water", "eat meal", "brush teeth"] and names[-1] == "rock-paper-scissors"
