"""The fresh utility model: a 3D CNN trained on an encoder's frozen output for the actions of the
benchmark split, end to end on tiny frame folders."""
from __future__ import annotations

import json

import numpy as np

from conftest import write_frame_folder
from tools import utility_model


def _motion_dataset(root):
    """Action 1: a bar moving right; action 2: moving left; the same frames per clip otherwise."""
    for setup in (1, 2):
        for performer in (1, 2, 3):
            for action in (1, 2):
                frames = np.full((8, 16, 16, 3), 60 + 40 * performer, dtype=np.uint8)
                for t in range(8):
                    x = 2 * t if action == 1 else 14 - 2 * t
                    frames[t, :, x:x + 2] = 250
                write_frame_folder(root / f"S{setup:03d}C001P{performer:03d}R001A{action:03d}", frames)


def test_utility_model_trains_on_the_encoder_output_and_writes_json(tmp_path):
    _motion_dataset(tmp_path / "data")
    opts = ["DATA.ROOT", str(tmp_path / "data"), "DATA.SYNTHETIC.ENABLED", "False", "DATA.NUM_CLASSES", "2",
            "DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "16", "DATA.NUM_WORKERS", "0", "MODEL.ENCODER", "rgb"]
    out = tmp_path / "out"
    assert utility_model.main(["--output", str(out), "--epochs", "1", "--batch-size", "4", "--opts", *opts]) == 0
    result = json.loads((out / "utility.json").read_text())
    # xset: the even setup trains (6 videos), the odd one validates (6)
    assert result["train_videos"] == 6 and result["videos"] == 6 and result["chance"] == 50.0
    assert result["arch"] == "r3d_18" and result["encoder"] == "rgb"
    assert 0 <= result["acc1"] <= result["acc5"] == 100.0
    assert utility_model.main(["--output", str(tmp_path / "bad"), "--opts", *opts, "MODEL.ENCODER", "bdq",
                               "DATA.NUM_FRAMES", "1"]) == 2
