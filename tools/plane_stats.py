"""Per-plane mean and standard deviation of a training set's IFNS planes.

Usage: python tools/plane_stats.py --config CFG [--opts KEY VALUE ...] [--clips N]

Reads N training clips spread evenly over the training set (with the training augmentation, as the
model sees them) and prints the statistics of fd(t-1), fd(t) and avg(t) on the 0..1 gray scale as
one JSON line and as the ``DATA.PLANE_MEAN`` / ``DATA.PLANE_STD`` lines of a config. A model
trained from scratch wants these instead of CLIP's normalisation (see datasets/ifns.py).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from tqdm import tqdm

import torch

from datasets.loader import build_datasets
from models import build_input_encoder
from models.ifns import PLANES, IFNSEncoder
from utils.misc import PIXEL_MAX
from utils.config import load_config
from utils.errors import USER_ERROR_EXIT_CODE, UserError

DEFAULT_CLIPS = 256
DIGITS = 4  # decimals printed


def plane_stats(dataset, encoder: IFNSEncoder, clips: int) -> tuple[list[float], list[float]]:
    """Mean and std per plane, on the 0..1 scale, over ``clips`` items of ``dataset``.

    Args:
        dataset: a :class:`~datasets.dataset.ClipDataset` of the encoder's frames.
        encoder: the IFNS encoder whose planes are measured (before its normalisation).
        clips: items read, spread evenly over the dataset (all of them when it is smaller).
    """
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(clips, len(dataset))).round().astype(int))
    total = np.zeros(PLANES)
    total_sq = np.zeros(PLANES)
    count = 0
    for index in tqdm(indices, desc="plane statistics", unit="clip"):
        frames = torch.from_numpy(dataset.load_item(int(index))["frames"])  # [(V,) T, F, 1, S, S]
        planes = encoder.planes(frames.reshape((-1,) + frames.shape[-4:])[None]) / PIXEL_MAX  # [1, T', 3, S, S]
        per_plane = planes[0].transpose(0, 1).reshape(PLANES, -1).double().numpy()
        total += per_plane.sum(axis=1)
        total_sq += (per_plane ** 2).sum(axis=1)
        count += per_plane.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    return [round(float(m), DIGITS) for m in mean], [round(float(s), DIGITS) for s in std]


def main(argv: list[str] | None = None) -> int:
    """Prints the plane statistics of the configured training set.

    Args:
        argv: command-line arguments (None = ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="experiment YAML (default: the demo)")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides")
    parser.add_argument("--clips", type=int, default=DEFAULT_CLIPS, help="training clips to read")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.opts)
        if cfg.MODEL.ENCODER != "ifns":
            raise UserError(f"MODEL.ENCODER {cfg.MODEL.ENCODER} reads RGB frames, not IFNS planes; "
                            "plane statistics apply to MODEL.ENCODER ifns")
        mean, std = plane_stats(build_datasets(cfg, crop_on_device=False).train, build_input_encoder(cfg),
                                args.clips)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    print(json.dumps({"plane_mean": mean, "plane_std": std, "clips": args.clips}))
    print(f"DATA:\n  PLANE_MEAN: {mean}\n  PLANE_STD: {std}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
