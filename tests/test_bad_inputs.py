"""The bad-input and fault table (README, Reliability): every case ends with exit status 2 (130 for
Ctrl-C), one line on stderr naming the thing, and the files written before are byte-identical."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import main as launcher
from trainers.trainer import Trainer

TINY = ["DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "16", "DATA.FD_STRIDE", "2", "DATA.NUM_WORKERS", "0",
        "DATA.NUM_CLASSES", "3", "MODEL.PRIVACY_CLASSES", "[3]", "DATA.SYNTHETIC.ENABLED", "False",
        "MODEL.CUSTOM.LAYERS", "1", "MODEL.CUSTOM.TEXT_LAYERS", "1", "MODEL.CUSTOM.PATCH_SIZE", "8",
        "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "4", "TEST.NUM_CLIP", "1", "TRAIN.EPOCHS", "1",
        "TRAIN.WARMUP_EPOCHS", "0"]
PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """18 NTU-named frame folders (9 train, 9 val)."""
    from conftest import moving_frames, tiny_names, write_frame_folder

    root = tmp_path_factory.mktemp("bad_inputs") / "frames"
    for i, name in enumerate(tiny_names()):
        write_frame_folder(root / name, moving_frames(i))
    return root


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    """A finished one-epoch run folder (config.yaml, metrics.json, last.pth, best.pth ...)."""
    run = tmp_path_factory.mktemp("bad_inputs") / "run"
    assert launcher.main(["--output", str(run), "--opts", "DATA.ROOT", str(data), *TINY]) == 0
    return run


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != "log.txt"}


def _fails(argv: list[str], capsys, needle: str, status: int = 2) -> str:
    """Runs the launcher; asserts the exit status and one stderr line holding ``needle``."""
    assert launcher.main(argv) == status
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert needle in err and "Traceback" not in err, err
    return err


def _copy_run(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


def test_corrupt_frame_in_a_loader_worker_is_the_original_line(data, tmp_path, capsys):
    root = tmp_path / "frames"
    shutil.copytree(data, root)
    broken = root / "S002C001P001R001A001" / "00003.jpg"
    broken.write_bytes(b"not a jpeg")
    err = _fails(["--output", str(tmp_path / "out"), "--opts", "DATA.ROOT", str(root), *TINY,
                  "DATA.NUM_WORKERS", "2"], capsys, "00003.jpg")
    assert "DataLoader worker" not in err and "S002C001P001R001A001" in err
    assert "Original Traceback" in (tmp_path / "out" / "log.txt").read_text()  # the full story is logged


def test_fp16_updates_that_are_all_skipped_stop_the_run(data, tmp_path, capsys):
    _fails(["--output", str(tmp_path / "out"), "--opts", "DATA.ROOT", str(data), *TINY, "TRAIN.PRECISION", "fp16",
            "TRAIN.LR", "1e6", "TRAIN.MAX_NONFINITE", "0", "MODEL.FREEZE", "[]"], capsys, "optimizer steps")


@pytest.mark.parametrize("case", ["virtual file system", "parent is a file"])
def test_unwritable_output_folder(case, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    output = "/proc/lps_har_out" if case == "virtual file system" else str(tmp_path / "file" / "run")
    _fails(["--output", output], capsys, f"--output {output} is not a writable folder")


def test_disk_full_while_saving_keeps_the_previous_checkpoint(data, trained, tmp_path, capsys, monkeypatch):
    run = _copy_run(trained, tmp_path)
    before = (run / "last.pth").read_bytes()

    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk)
    _fails(["--output", str(run), "--resume", "auto", "--opts", "DATA.ROOT", str(data), *TINY, "TRAIN.EPOCHS", "2"],
           capsys, f"MB free in {run}")
    assert (run / "last.pth").read_bytes() == before
    assert not list(run.glob(".tmp_*"))


@pytest.mark.parametrize("flag", ["--resume", "--pretrained"])
@pytest.mark.parametrize("content", [b"model weights, trust me\n", os.urandom(4096)])
@pytest.mark.parametrize("allow", [[], ["--allow-pickle", "True"]])
def test_a_file_that_is_no_checkpoint_says_so(flag, content, allow, data, tmp_path, capsys):
    fake = tmp_path / "fake.pth"
    fake.write_bytes(b"#" + content)  # never the first byte of a zip archive or a pickle
    err = _fails(["--output", str(tmp_path / "out"), flag, str(fake), *allow, "--opts", "DATA.ROOT", str(data),
                  *TINY], capsys, f"{fake} is not a checkpoint")
    assert "allow-pickle" not in err


def test_resuming_with_another_freeze(data, trained, tmp_path, capsys):
    run = _copy_run(trained, tmp_path)
    before = _snapshot(run)
    _fails(["--output", str(run), "--resume", str(run / "last.pth"), "--opts", "DATA.ROOT", str(data), *TINY,
            "TRAIN.EPOCHS", "2", "MODEL.FREEZE", "[]"], capsys, "another MODEL.FREEZE")
    assert _snapshot(run) == before


def test_resuming_into_another_width_names_the_config_that_wrote_it(data, trained, tmp_path, capsys):
    run = _copy_run(trained, tmp_path)
    err = _fails(["--output", str(tmp_path / "wide"), "--resume", str(run / "last.pth"), "--opts", "DATA.ROOT",
                  str(data), *TINY, "MODEL.CUSTOM.WIDTH", "128"], capsys, "does not fit the model")
    assert f"{run / 'config.yaml'}" in err and "[64" in err and "[128" in err


@pytest.mark.parametrize("opts, needle", [
    (["MODEL.CUSTOM.PATCH_SIZE", "0"], "MODEL.CUSTOM.PATCH_SIZE"),
    (["MODEL.CUSTOM.WIDTH", "0"], "MODEL.CUSTOM.WIDTH"),
    (["MODEL.CUSTOM.EMBED_DIM", "32"], "MODEL.CUSTOM.EMBED_DIM"),
    (["MODEL.CUSTOM.TEXT_WIDTH", "32"], "MODEL.CUSTOM.TEXT_WIDTH"),
    (["TRAIN.LR", "-1.0"], "TRAIN.LR must be positive"),
])
def test_bad_values(opts, needle, capsys):
    _fails(["--opts", *opts], capsys, needle)


def test_a_config_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("# caf\xe9\nTRAIN:\n  LR: 0.1\n".encode("latin-1"))
    _fails(["--config", str(path)], capsys, "is not UTF-8")


def test_a_run_that_fails_at_once_keeps_the_folder_it_was_pointed_at(trained, tmp_path, capsys):
    run = _copy_run(trained, tmp_path)
    before = _snapshot(run)
    _fails(["--output", str(run), "--opts", *TINY, "DATA.ROOT", str(tmp_path / "nowhere")], capsys, "DATA.ROOT")
    assert _snapshot(run) == before


def test_test_only_run_writes_its_own_files(data, trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    before = _snapshot(run)
    assert launcher.main(["--only_test", "True", "--resume", str(run / "best.pth"), "--output", str(run),
                          "--opts", "DATA.ROOT", str(data), *TINY]) == 0
    after = _snapshot(run)
    assert {name: after[name] for name in before} == before
    assert {"test_config.yaml", "test_metrics.json", "test_per_class_acc.csv"} <= set(after)


def test_test_only_needs_a_model(data, tmp_path, capsys):
    _fails(["--only_test", "True", "--output", str(tmp_path / "out"), "--opts", "DATA.ROOT", str(data), *TINY],
           capsys, "pass --resume CKPT")
    assert not (tmp_path / "out" / "test_metrics.json").exists()


def test_ctrl_c_says_how_to_resume(data, tmp_path, capsys, monkeypatch):
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_one_epoch", interrupted)
    _fails(["--output", str(tmp_path / "out"), "--opts", "DATA.ROOT", str(data), *TINY], capsys,
           "resume with --resume auto", status=130)


def test_a_user_error_under_torchrun_is_printed_once(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             f"--master_port={port}", str(PROJECT / "main.py"), "--output", str(tmp_path / "out"),
                             "--opts", "TRAIN.LR", "-1.0"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert result.stderr.count("error: TRAIN.LR must be positive") == 1, result.stderr[-2000:]
