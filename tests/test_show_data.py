"""tools/show_data.py: one JSON line with the split sizes and a PNG, on tiny generated data."""
from __future__ import annotations

import json

import matplotlib.image
import pytest

from datasets.loader import build_datasets
from tools import show_data
from utils.paths import synthetic_cache_dir

TINY_OPTS = ["DATA.NUM_CLASSES", "3", "MODEL.PRIVACY_CLASSES", "[3]", "DATA.NUM_FRAMES", "4",
             "DATA.INPUT_SIZE", "16", "DATA.NUM_WORKERS", "0"]


@pytest.mark.parametrize("layout", ["frames", "video"])
def test_show_data_on_synthetic_layout(tmp_path, capsys, layout, make):
    opts = TINY_OPTS + ["DATA.SYNTHETIC.CACHE", str(tmp_path / "cache"), "DATA.LAYOUT", layout]
    cfg = make.tiny_config("", *opts, "DATA.SYNTHETIC.ENABLED", "True")
    names = make.tiny_names(performers=2, actions=2)
    make.write_synthetic_layout(synthetic_cache_dir(cfg), names, layout)
    out = tmp_path / "sample.png"
    assert show_data.main(["--opts", *opts, "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {"train_videos": 4, "val_videos": 4, "classes": 3,
                                    "identities": 2}
    assert matplotlib.image.imread(out).ndim == 3
    rows = show_data.draw_sample(build_datasets(cfg), cfg, tmp_path / "again.png")
    assert rows == ["raw", "LPS", "fd(t-1)", "fd(t)", "avg(t)"]


def test_show_data_on_frame_folders(frames_root, tmp_path, capsys):
    opts = TINY_OPTS + ["DATA.ROOT", str(frames_root), "DATA.SYNTHETIC.ENABLED", "False"]
    out = tmp_path / "frames.png"
    assert show_data.main(["--opts", *opts, "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {"train_videos": 9, "val_videos": 9,
                                                   "classes": 3, "identities": 3}
    assert out.stat().st_size > 0


def test_show_data_missing_root_exits_2(tmp_path, capsys):
    code = show_data.main(["--opts", "DATA.ROOT", str(tmp_path / "none"), "--out",
                           str(tmp_path / "x.png")])
    assert code == 2
    assert "DATA.ROOT" in capsys.readouterr().err
