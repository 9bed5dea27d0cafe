"""Shows what the model sees: split sizes as one JSON line and a picture of one sample.

Usage: python tools/show_data.py --config CFG [--opts KEY VALUE ...] --out FILE.png

The picture has one column per sampled frame and the rows: the raw frame (when the synthetic raw
copy exists), the frame the model reads (LPS-degraded), and the input encoder's three channels
(for IFNS the planes fd(t-1), fd(t) and avg(t)) after cropping (the first test view of the first
validation video).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
import torch
from yacs.config import CfgNode

from datasets.dataset import sample_rng
from datasets.loader import SYNTHETIC_FOLDERS, SYNTHETIC_VIDEO_EXT, DataSplits, build_datasets
from datasets.readers import FrameFolderClip, PrecomputedClip
from datasets.packed import PackedClip
from datasets.video import VideoClip
from models import build_input_encoder
from models.ifns import IFNSEncoder
from utils.config import load_config
from utils.errors import USER_ERROR_EXIT_CODE, UserError
from utils.misc import PIXEL_MAX

PLANE_NAMES = ("fd(t-1)", "fd(t)", "avg(t)")
PANEL_INCHES = 1.4
SAMPLE_INDEX = 0


def _raw_frames(splits: DataSplits, layout: str, name: str, indices: np.ndarray) -> np.ndarray | None:
    """RGB frames [T, H, W, 3] of the synthetic raw copy of ``name``, None when there is none."""
    if splits.synthetic_root is None or layout not in SYNTHETIC_FOLDERS:
        return None
    raw_root = splits.synthetic_root / "raw" / SYNTHETIC_FOLDERS[layout]
    if layout == "video":
        path = raw_root / f"{name}{SYNTHETIC_VIDEO_EXT}"
        return VideoClip(path, name).read(indices, gray=False) if path.is_file() else None
    folder = raw_root / name
    return FrameFolderClip(folder, name).read(indices, gray=False) if folder.is_dir() else None


def draw_sample(splits: DataSplits, cfg: CfgNode, out: Path) -> list[str]:
    """Draws validation sample ``SAMPLE_INDEX`` of ``splits`` into ``out`` (PNG).

    Returns:
        The names of the drawn rows.
    """
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the headless backend

    dataset = splits.val
    name = dataset.names[SAMPLE_INDEX]
    rng = sample_rng(dataset.seed, 0, SAMPLE_INDEX)  # the item's draws, in the dataset's order
    clip = dataset.opener(name)
    indices = dataset.sampler(clip.num_frames, rng)[0]
    clip = dataset.wrap(clip, rng)  # the film simulation of the item, with its noise
    frames = torch.from_numpy(dataset.load_item(SAMPLE_INDEX)["frames"][:1])  # first view [1, T, F, C, S, S]
    encoder = build_input_encoder(cfg)
    ifns = isinstance(encoder, IFNSEncoder)
    model_input = encoder.planes(frames) if ifns else encoder(frames)  # [1, T, 3, S, S]
    rows: list[tuple[str, list[np.ndarray]]] = []
    raw = _raw_frames(splits, cfg.DATA.LAYOUT, name, indices)
    if raw is not None:
        rows.append(("raw", list(raw)))
    if not isinstance(clip, PrecomputedClip):  # a packed store holds gray frames only
        rows.append(("LPS", list(clip.read(indices, gray=isinstance(clip, PackedClip)))))
    names = PLANE_NAMES if ifns else tuple(f"{cfg.MODEL.ENCODER} {c}" for c in "RGB")
    for p, plane_name in enumerate(names):
        images = model_input[0, :, p].numpy()
        if not ifns:  # normalised values: shown on their own range
            images = (images - images.min()) / max(float(np.ptp(images)), 1e-6) * PIXEL_MAX
        rows.append((plane_name, [np.clip(image, 0, PIXEL_MAX) for image in images]))
    fig, axes = plt.subplots(len(rows), len(indices), squeeze=False,
                             figsize=(PANEL_INCHES * len(indices), PANEL_INCHES * len(rows)))
    for r, (row_name, images) in enumerate(rows):
        # Frame differences are faint: each gray row is stretched to its own maximum.
        vmax = max(float(np.max(images)), 1.0) if images[0].ndim == 2 else PIXEL_MAX
        for t, image in enumerate(images):
            ax = axes[r, t]
            if image.ndim == 3:
                ax.imshow(image.astype(np.uint8))
            else:
                ax.imshow(image, cmap="gray", vmin=0.0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if t == 0:
                ax.set_ylabel(row_name)
            if r == 0:
                ax.set_title(f"t={indices[t]}", fontsize="small")
    fig.suptitle(f"{name} ({dataset.labels[SAMPLE_INDEX] + 1}: "
                 f"{splits.class_names[dataset.labels[SAMPLE_INDEX]]})", fontsize="small")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [row_name for row_name, _ in rows]


def main(argv: list[str] | None = None) -> int:
    """Prints the split sizes as one JSON line and draws one sample.

    Args:
        argv: command-line arguments (None = ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="experiment YAML (default: the demo)")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides")
    parser.add_argument("--out", required=True, type=Path, help="PNG file to draw into")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.opts)
        splits = build_datasets(cfg, crop_on_device=False)
        identities = set(splits.train.identities) | set(splits.val.identities)
        print(json.dumps({"train_videos": len(splits.train), "val_videos": len(splits.val),
                          "classes": len(splits.class_names), "identities": len(identities)}))
        draw_sample(splits, cfg, args.out)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
