"""tools/plane_stats.py: the printed statistics standardise the planes they were measured on."""
from __future__ import annotations

import json

import numpy as np
import torch

from datasets.loader import build_datasets
from models import build_input_encoder
from tools import plane_stats

TINY_OPTS = ["DATA.NUM_CLASSES", "3", "MODEL.PRIVACY_CLASSES", "[3]", "DATA.NUM_FRAMES", "4",
             "DATA.INPUT_SIZE", "16", "DATA.NUM_WORKERS", "0", "DATA.SYNTHETIC.ENABLED", "False",
             "DATA.FD_STRIDE", "2", "AUG.COLOR_JITTER", "0.0"]


def test_printed_statistics_give_zero_mean_unit_std_planes(frames_root, capsys, make):
    opts = TINY_OPTS + ["DATA.ROOT", str(frames_root)]
    assert plane_stats.main(["--opts", *opts, "--clips", "1000"]) == 0
    stats = json.loads(capsys.readouterr().out.splitlines()[0])
    assert stats["plane_std"][0] > 0 and stats["plane_mean"][2] > stats["plane_mean"][0]
    cfg = make.tiny_config(str(frames_root), *TINY_OPTS,
                           "DATA.PLANE_MEAN", str(stats["plane_mean"]),
                           "DATA.PLANE_STD", str(stats["plane_std"]))
    train, encoder = build_datasets(cfg).train, build_input_encoder(cfg)
    frames = torch.stack([torch.from_numpy(train.load_item(i)["frames"]) for i in range(len(train))])
    planes = encoder(frames).numpy()  # [N, T, 3, S, S], normalised by the encoder
    np.testing.assert_allclose(planes.mean(axis=(0, 1, 3, 4)), 0.0, atol=0.01)
    np.testing.assert_allclose(planes.std(axis=(0, 1, 3, 4)), 1.0, atol=0.01)
