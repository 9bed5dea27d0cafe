"""Checkpoints: atomic writes, weights-only loading, RNG round trip, resume-file choice, and a
resumed run that continues the exact trajectory of an uninterrupted one."""
import os
import random
import time

import numpy as np
import pytest
import torch

import main as launcher
from trainers.checkpoint import (CheckpointError, find_latest_checkpoint, load_checkpoint,
                                 save_checkpoint)
from utils.errors import UserError
from utils.misc import capture_rng_state, restore_rng_state


def test_save_is_atomic_and_weights_only_loadable(tmp_path):
    path = tmp_path / "last.pth"
    state = {"format_version": 1, "model": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 3, "config": "A: 1\n"}
    save_checkpoint(state, path)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["epoch"] == 3
    with pytest.raises(Exception):
        save_checkpoint({"format_version": 1, "bad": lambda: 0}, path)  # fails mid-save
    assert torch.equal(load_checkpoint(path)["model"]["w"], state["model"]["w"])  # old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]  # no temporary left behind


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint({"format_version": 1, "rng": [capture_rng_state()]}, tmp_path / "r.pth")
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(load_checkpoint(tmp_path / "r.pth")["rng"][0])
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])


def test_latest_checkpoint_ignores_partial_files(tmp_path):
    assert find_latest_checkpoint(tmp_path) is None
    save_checkpoint({"format_version": 1}, tmp_path / "ckpt_epoch_1.pth")
    (tmp_path / ".tmp_abc.pth").write_bytes(b"partial")
    (tmp_path / "ckpt_epoch_9.pth.tmp").write_bytes(b"partial")
    assert find_latest_checkpoint(tmp_path) == str(tmp_path / "ckpt_epoch_1.pth")
    time.sleep(0.01)
    save_checkpoint({"format_version": 1}, tmp_path / "last.pth")
    os.utime(tmp_path / "last.pth", (time.time() + 5, time.time() + 5))
    assert find_latest_checkpoint(tmp_path) == str(tmp_path / "last.pth")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_unreadable_checkpoint_is_a_one_line_user_error(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(UserError) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and "bad.pth" in str(info.value)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pth")


def _tiny_args(root, output, *extra):
    return ["--output", str(output), "--opts", "DATA.ROOT", str(root), "DATA.NUM_FRAMES", "4",
            "DATA.INPUT_SIZE", "16", "DATA.FD_STRIDE", "2", "DATA.NUM_WORKERS", "0",
            "DATA.NUM_CLASSES", "3", "DATA.NUM_IDENTITIES", "3", "DATA.SYNTHETIC.ENABLED", "False",
            "MODEL.CUSTOM.LAYERS", "1", "MODEL.CUSTOM.TEXT_LAYERS", "1", "MODEL.CUSTOM.PATCH_SIZE", "8",
            "TRAIN.BATCH_SIZE", "2", "TEST.BATCH_SIZE", "4", "TEST.NUM_CLIP", "1", "TRAIN.EPOCHS", "2",
            "TRAIN.WARMUP_EPOCHS", "1", "MODEL.DROP_PATH_RATE", "0.1", "AUG.MIXUP", "0.8", "AUG.CUTMIX", "1.0",
            "PRINT_FREQ", "2", *extra]


def test_resume_continues_the_same_trajectory(tmp_path, make):
    root = tmp_path / "frames"
    for i, name in enumerate(make.tiny_names()):
        make.write_frame_folder(root / name, make.moving_frames(i))
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert launcher.main(_tiny_args(root, straight)) == 0
    assert {"last.pth", "best.pth", "ckpt_epoch_1.pth", "ckpt_epoch_2.pth", "config.yaml", "log.txt",
            "metrics.json"} <= {p.name for p in straight.iterdir()}
    assert launcher.main(_tiny_args(root, resumed, "MODEL.RESUME", str(straight / "ckpt_epoch_1.pth"))) == 0
    final = torch.load(straight / "last.pth", weights_only=True)
    again = torch.load(resumed / "last.pth", weights_only=True)
    assert again["epoch"] == final["epoch"] == 2 and again["global_step"] == final["global_step"]
    for name, value in final["model"].items():
        assert torch.equal(value, again["model"][name]), name
    # --resume auto picks the newest complete checkpoint: the run is already done, nothing trains
    assert launcher.main(_tiny_args(root, resumed, "MODEL.RESUME", "auto")) == 0
    assert torch.equal(torch.load(resumed / "last.pth", weights_only=True)["model"]["logit_scale"],
                       final["model"]["logit_scale"])
