"""The launcher's command line: boolean flags, flag-to-config mapping, one-line user errors with
exit status 2, and testing a checkpoint without training."""
import json

import pytest

import main as launcher

TINY = ["DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "16", "DATA.FD_STRIDE", "2", "DATA.NUM_WORKERS", "0",
        "DATA.NUM_CLASSES", "3", "MODEL.PRIVACY_CLASSES", "[3]", "DATA.SYNTHETIC.ENABLED", "False",
        "MODEL.CUSTOM.LAYERS", "1", "MODEL.CUSTOM.TEXT_LAYERS", "1", "MODEL.CUSTOM.PATCH_SIZE", "8",
        "TRAIN.BATCH_SIZE", "2", "TEST.BATCH_SIZE", "4", "TEST.NUM_CLIP", "2", "TRAIN.EPOCHS", "1",
        "TRAIN.WARMUP_EPOCHS", "0"]


def _overrides(argv):
    return launcher.config_overrides(launcher.build_parser().parse_args(argv))


@pytest.mark.parametrize("word, value", [("False", False), ("0", False), ("true", True), ("1", True)])
def test_boolean_flags_mean_what_they_say(word, value):
    opts = _overrides(["--only_test", word, "--distributed", word, "--allow-pickle", word])
    pairs = dict(zip(opts[0::2], opts[1::2]))
    assert pairs["TEST.ONLY_TEST"] == repr(value) and pairs["DISTRIBUTED"] == repr(value)
    assert pairs["MODEL.ALLOW_PICKLE"] == repr(value)


def test_flags_map_onto_config_keys():
    opts = _overrides(["--opts", "TRAIN.LR", "0.5", "--output", "out/x", "--resume", "auto", "--pretrained", "none",
                       "--batch-size", "3", "--accumulation-steps", "2", "--local-rank=1"])
    pairs = dict(zip(opts[0::2], opts[1::2]))
    assert pairs == {"TRAIN.LR": "0.5", "OUTPUT": "'out/x'", "MODEL.RESUME": "'auto'",
                     "MODEL.PRETRAINED": "'none'", "TRAIN.BATCH_SIZE": "3", "TRAIN.ACCUMULATION_STEPS": "2"}
    assert launcher.build_parser().parse_args(["--local_rank", "3"]).local_rank == 3
    from utils.config import load_config

    cfg = load_config(None, _overrides(["--only_test", "False", "--batch-size", "3"]))
    assert cfg.TEST.ONLY_TEST is False and cfg.TRAIN.BATCH_SIZE == 3


def _frames_root(tmp_path, make):
    root = tmp_path / "frames"
    for i, name in enumerate(make.tiny_names()):
        make.write_frame_folder(root / name, make.moving_frames(i))
    return root


@pytest.mark.parametrize("case", ["missing config", "unknown key", "bad flag", "bad bool", "missing data root",
                                  "unreadable checkpoint"])
def test_user_errors_exit_2_with_one_line(case, tmp_path, capsys, make):
    out = str(tmp_path / "out")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    argv = {
        "missing config": ["--config", str(tmp_path / "nope.yaml")],
        "unknown key": ["--opts", "TRAIN.NOPE", "1"],
        "bad flag": ["--no-such-flag"],
        "bad bool": ["--only_test", "maybe"],
        "missing data root": ["--output", out, "--opts", "DATA.ROOT", str(tmp_path / "no_data")],
        "unreadable checkpoint": ["--output", out, "--resume", str(bad), "--opts", "DATA.ROOT",
                                  str(_frames_root(tmp_path, make)) if case == "unreadable checkpoint" else "", *TINY],
    }[case]
    assert launcher.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert "Traceback" not in err


def test_only_test_with_resume_writes_metrics_without_training(tmp_path, make):
    root = _frames_root(tmp_path, make)
    train_out, test_out = tmp_path / "train", tmp_path / "test"
    assert launcher.main(["--output", str(train_out), "--opts", "DATA.ROOT", str(root), *TINY]) == 0
    assert launcher.main(["--output", str(test_out), "--resume", str(train_out / "last.pth"),
                          "--only_test", "True", "--opts", "DATA.ROOT", str(root), *TINY]) == 0
    metrics = json.loads((test_out / "test_metrics.json").read_text())
    assert metrics == json.loads((train_out / "metrics.json").read_text())
    assert metrics["epoch"] == 1 and metrics["num_videos"] == 9 and metrics["num_views"] == 2
    assert {"acc1", "acc5", "mean_class_acc", "id_acc1", "id_acc5", "id_videos"} <= set(metrics)
    assert not (test_out / "last.pth").exists()  # nothing trained, nothing saved
    assert (test_out / "test_config.yaml").is_file() and (test_out / "test_per_class_acc.csv").is_file()
    assert not (test_out / "config.yaml").exists() and not (test_out / "metrics.json").exists()
