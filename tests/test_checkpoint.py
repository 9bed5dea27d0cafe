"""Checkpoints: atomic writes, weights-only loading, RNG round trip, resume-file choice, hard
links and pruning of the saver, a kill between last.pth and its links repaired on resume, and a
resumed run that continues the exact trajectory of an uninterrupted one."""
import os
import random
import time

import numpy as np
import pytest
import torch

import main as launcher
import trainers.checkpoint as checkpoint
from models.convert import CheckpointError as ModelsCheckpointError
from trainers.checkpoint import (CheckpointError, CheckpointSaver, find_latest_checkpoint, link_or_copy,
                                 load_checkpoint, save_checkpoint)
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
            "DATA.NUM_CLASSES", "3", "MODEL.PRIVACY_CLASSES", "[3]", "DATA.SYNTHETIC.ENABLED", "False",
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


def _ino(path) -> int:
    return os.stat(path).st_ino


def test_saver_hard_links_best_and_periodic_files_and_prunes(tmp_path):
    saver = CheckpointSaver(tmp_path, keep=2)
    for epoch in range(1, 5):
        periodic = epoch != 3
        saver.save({"format_version": 1, "epoch": epoch}, epoch=epoch, is_best=epoch == 2, periodic=periodic)
        owed = (["best.pth"] if epoch == 2 else []) + ([f"ckpt_epoch_{epoch}.pth"] if periodic else [])
        assert all(_ino(tmp_path / name) == _ino(tmp_path / "last.pth") for name in owed), epoch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pth", "ckpt_epoch_2.pth", "ckpt_epoch_4.pth",
                                                          "last.pth"]  # SAVE_KEEP 2: epoch 1 pruned
    assert _ino(tmp_path / "best.pth") == _ino(tmp_path / "ckpt_epoch_2.pth") != _ino(tmp_path / "last.pth")
    assert load_checkpoint(tmp_path / "best.pth")["epoch"] == 2
    assert load_checkpoint(tmp_path / "last.pth")["links"] == ["ckpt_epoch_4.pth"]
    CheckpointSaver(tmp_path, keep=1).repair()  # a later run with a smaller SAVE_KEEP prunes at start
    assert not (tmp_path / "ckpt_epoch_2.pth").exists() and (tmp_path / "ckpt_epoch_4.pth").is_file()


def test_saver_copies_atomically_where_hard_links_fail(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError("no hard links on this file system")

    monkeypatch.setattr(os, "link", no_links)
    CheckpointSaver(tmp_path).save({"format_version": 1, "epoch": 1}, epoch=1, is_best=True, periodic=True)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.pth", "ckpt_epoch_1.pth", "last.pth"]  # no temporaries left
    assert len({_ino(tmp_path / name) for name in names}) == 3
    assert all((tmp_path / name).read_bytes() == (tmp_path / "last.pth").read_bytes() for name in names)


def test_link_onto_itself_and_one_error_class(tmp_path):
    save_checkpoint({"format_version": 1}, tmp_path / "last.pth")
    assert link_or_copy(tmp_path / "last.pth", tmp_path / "best.pth")
    assert link_or_copy(tmp_path / "last.pth", tmp_path / "best.pth")  # already a link: nothing left over
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pth", "last.pth"]
    assert CheckpointError is ModelsCheckpointError


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, not even ``except Exception``."""


def test_kill_between_last_and_its_links_is_repaired_on_resume(tmp_path, make, monkeypatch):
    root = tmp_path / "frames"
    for i, name in enumerate(make.tiny_names()):
        make.write_frame_folder(root / name, make.moving_frames(i))
    out = tmp_path / "run"
    args = _tiny_args(root, out, "EVAL_FREQ", "2")  # evaluated once, after epoch 2: that save owes best.pth
    link = checkpoint.link_or_copy

    def killed_at_the_best_link(src, dst):
        if os.path.basename(dst) == "best.pth":
            raise _Killed()
        return link(src, dst)

    monkeypatch.setattr(checkpoint, "link_or_copy", killed_at_the_best_link)
    with pytest.raises(_Killed):
        launcher.main(args)
    assert load_checkpoint(out / "last.pth")["epoch"] == 2  # renamed into place before the kill
    assert not (out / "best.pth").exists() and not (out / "ckpt_epoch_2.pth").exists()
    monkeypatch.setattr(checkpoint, "link_or_copy", link)
    assert launcher.main(args + ["MODEL.RESUME", "auto"]) == 0
    last = load_checkpoint(out / "last.pth")
    assert last["epoch"] == 2 and last["links"] == ["best.pth", "ckpt_epoch_2.pth"]
    for name in ("best.pth", "ckpt_epoch_2.pth"):
        assert _ino(out / name) == _ino(out / "last.pth"), name
    assert load_checkpoint(out / "ckpt_epoch_1.pth")["epoch"] == 1


def test_save_keep_must_not_be_negative():
    from utils.config import ConfigError, load_config

    assert load_config(None, []).SAVE_KEEP == 0  # default: every periodic file is kept
    with pytest.raises(ConfigError, match="SAVE_KEEP"):
        load_config(None, ["SAVE_KEEP", "-1"])
