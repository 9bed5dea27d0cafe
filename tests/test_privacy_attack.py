"""Privacy attack: the attacker split, top-k and frame averaging, and a tiny end-to-end run."""
from __future__ import annotations

import csv
import itertools
import json
import zlib

import cv2
import numpy as np
import pytest
import torch

from datasets.ntu import parse_name
from tools import privacy_attack, tradeoff
from tools.privacy_attack import (build_attacker, split_by_replication, topk_accuracy,
                                  train_attacker, video_probabilities)

PERFORMER_COLOURS = ((230, 40, 40), (40, 230, 40), (40, 40, 230))


def _names(performers=range(1, 5), replications=(1, 2), setups=(1, 2), cameras=(1, 2), actions=(1, 3)):
    return [f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}"
            for s, c, p, r, a in itertools.product(setups, cameras, performers, replications, actions)]


def test_split_no_video_in_both_halves_and_every_identity_in_both():
    names = _names() + _names(performers=(7,), replications=(1,))  # performer 7: odd R only
    split = split_by_replication(names)
    assert not set(split.train) & set(split.test)
    train_ids = {parse_name(n).identity for n in split.train}
    test_ids = {parse_name(n).identity for n in split.test}
    assert train_ids == test_ids == set(split.identities) == {0, 1, 2, 3}
    assert split.dropped == [6]
    assert len(split.train) + len(split.test) == len(_names())
    assert all(parse_name(n).replication % 2 == 1 for n in split.train)
    assert all(parse_name(n).replication % 2 == 0 for n in split.test)
    capped = split_by_replication(names, max_per_identity=3)
    assert len(capped.train) == len(capped.test) == 3 * 4
    assert set(capped.train) <= set(split.train) and set(capped.test) <= set(split.test)
    assert {parse_name(n).setup for n in capped.train} == {1, 2}  # spread, not the first three


def test_topk_accuracy_exact():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    labels = torch.tensor([0, 1, 2, 1])
    assert topk_accuracy(probs, labels, 1) == pytest.approx(50.0)
    assert topk_accuracy(probs, labels, 2) == pytest.approx(75.0)
    assert topk_accuracy(probs, labels, 5) == pytest.approx(100.0)  # k capped at the classes


def test_video_probabilities_average_frames():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 2, 4))
    x = torch.randn(5, 3, 3, 2, 2)  # [N, T, 3, S, S]
    probs = video_probabilities(model, x, batch_size=2)
    expected = torch.stack([model(v).softmax(-1).mean(0) for v in x])
    assert torch.allclose(probs, expected, atol=1e-6)


def test_feature_probe_learns_separable_identities():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=gen) * 3
    y = torch.arange(4).repeat(50)
    x = centres[y] + torch.randn(200, 16, generator=gen)
    for name in ("linear", "mlp"):
        model = build_attacker(name, 4, image_size=0, in_features=16)
        train_attacker(model, x, y, epochs=60, lr=1e-2, batch_size=200, seed=0, augment=False)
        assert topk_accuracy(video_probabilities(model, x, 64), y, 1) > 95


def _write_dataset(root):
    """24 tiny NTU-named frame folders: the performer sets the colour, replication the noise."""
    for name in _names(performers=(1, 2, 3), cameras=(1,)):
        p = parse_name(name)
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        folder = root / name
        folder.mkdir(parents=True)
        for t in range(6):
            frame = np.full((16, 16, 3), PERFORMER_COLOURS[p.performer - 1], dtype=np.float64)
            frame += rng.normal(0, 10, frame.shape)
            rgb = np.clip(frame, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{t:05d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.mark.parametrize("extra", [[], ["--restore", "wiener", "--level", "1", "--target", "planes"]])
def test_end_to_end_writes_privacy_json(tmp_path, extra):
    _write_dataset(tmp_path / "data")
    out = tmp_path / "out"
    opts = ["DATA.ROOT", str(tmp_path / "data"), "DATA.SYNTHETIC.ENABLED", "False",
            "DATA.INPUT_SIZE", "16", "DATA.NUM_FRAMES", "3", "DATA.FD_STRIDE", "1",
            "DATA.NUM_WORKERS", "0", "TRAIN.BATCH_SIZE", "2"]
    rc = privacy_attack.main(["--output", str(out), "--epochs", "1", "--batch-size", "16",
                              *extra, "--opts", *opts])
    assert rc == 0
    result = json.loads((out / "privacy.json").read_text())
    assert result["videos"] == 12 and result["train_videos"] == 12 and result["identities"] == 3
    assert result["chance"] == pytest.approx(100 / 3)
    assert 0 <= result["id_acc1"] <= result["id_acc5"] <= 100
    assert (out / "log.txt").is_file()


def test_bad_combination_is_a_user_error(tmp_path):
    assert privacy_attack.main(["--output", str(tmp_path), "--target", "features",
                                "--attacker", "resnet18"]) == 2
    assert not (tmp_path / "privacy.json").exists()


def test_tradeoff_collect_writes_table_and_plot(tmp_path):
    """--collect gathers finished runs; a missing run is a row with a note, not a crash."""
    for encoder, acc, attack in (("ifns", 80.0, 20.0), ("rgb", 90.0, 95.0)):
        run = tmp_path / f"{encoder}_l2"
        (run / "attack_planes").mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"acc1": acc, "id_acc1": 50.0}))
        (run / "attack_planes" / "privacy.json").write_text(
            json.dumps({"id_acc1": attack, "id_acc5": 99.0, "chance": 10.0}))
    frames = tmp_path / "frames_l2_none"
    frames.mkdir()
    (frames / "privacy.json").write_text(json.dumps({"id_acc1": 70.0, "id_acc5": 99.0, "chance": 10.0}))
    rc = tradeoff.main(["--output", str(tmp_path), "--collect", "--encoders", "ifns,rgb,bdq",
                        "--levels", "2"])
    assert rc == 0
    with open(tmp_path / "tradeoff.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["encoder"], r["restore"]) for r in rows] == [
        ("ifns", "none"), ("rgb", "none"), ("bdq", "none"), ("camera frames", "none"),
        ("camera frames", "wiener")]
    assert float(rows[0]["acc1"]) == 80.0 and float(rows[1]["attack_id_acc1"]) == 95.0
    assert rows[2]["note"] and rows[4]["note"]
    assert "| ifns | 2 | none | 80.0 | 50.0 | 20.0 | 99.0 | 10.0 |" in (tmp_path / "tradeoff.md").read_text()
    assert (tmp_path / "tradeoff.png").stat().st_size > 0
    assert tradeoff.main(["--output", str(tmp_path), "--collect", "--encoders", "nope"]) == 2
