"""Draws what Selective Privacy Preservation does to one sample: frames, similarity map, mask,
obfuscated frames.

Usage: python tools/show_spp.py --config CFG --opts SPP.WEIGHTS DINO.pth SPP.TEMPLATES T.pt \\
    [--sample N] --out spp.png

One column per sampled frame (the segment centres of validation sample N, as the test items
read them) and four rows: the frames SPP gets (after ``LPS.LEVEL`` film), the saliency (the
paper's mean positive cosine similarity to the templates, 0 to 1), the mask (the noise weight)
and the obfuscated frames. ``SPP.ENABLED`` is set. Prints one JSON line: the sample and the
fraction of every frame the mask hides.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np

from datasets.dataset import ClipDataset, sample_rng
from datasets.loader import build_datasets
from datasets.spp import Obfuscated, SPPClip
from utils.config import load_config
from utils.errors import USER_ERROR_EXIT_CODE, UserError

PANEL_INCHES = 1.6
DPI = 100
ROWS = ("frames", "similarity", "mask", "obfuscated")


def obfuscate_sample(dataset: ClipDataset, index: int) -> tuple[np.ndarray, np.ndarray, Obfuscated]:
    """The test view of sample ``index`` through the dataset's wrappers (its noise seed included).

    Returns:
        ``(indices [T], frames [T, H, W, 3] SPP's input, result)``.
    """
    rng = sample_rng(dataset.seed, 0, index)  # the item's generator, drawn in the item's order
    clip = dataset.opener(dataset.names[index])
    indices = dataset.sampler(clip.num_frames, rng)[0]
    wrapped = dataset.wrap(clip, rng)
    while not isinstance(wrapped, SPPClip):  # a restoration would sit outside SPP
        wrapped = wrapped.clip
    return indices, wrapped.clip.read(indices, gray=False), wrapped.obfuscate(indices)


def draw(indices: np.ndarray, frames: np.ndarray, result: Obfuscated, title: str, out: Path) -> None:
    """Writes the four-row picture of one sample into ``out`` (PNG)."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the headless backend

    images = {"frames": frames, "similarity": result.saliency, "mask": result.mask, "obfuscated": result.frames}
    fig, axes = plt.subplots(len(ROWS), len(indices), squeeze=False,
                             figsize=(PANEL_INCHES * len(indices), PANEL_INCHES * len(ROWS)))
    for r, row in enumerate(ROWS):
        for t in range(len(indices)):
            ax = axes[r, t]
            if images[row].ndim == 4:
                ax.imshow(images[row][t])
            else:  # saliency and mask: 0 to 1
                ax.imshow(images[row][t], cmap="inferno" if row == "similarity" else "gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if t == 0:
                ax.set_ylabel(row)
            if r == 0:
                ax.set_title(f"t={indices[t]}", fontsize="small")
    fig.suptitle(title, fontsize="small")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Draws the picture and prints one JSON line; returns the exit code (2 on a user error).

    Args:
        argv: command-line arguments (None = ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="experiment YAML (default: the demo)")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides (SPP.WEIGHTS, SPP.TEMPLATES ...)")
    parser.add_argument("--sample", type=int, default=0, help="validation sample index")
    parser.add_argument("--out", required=True, type=Path, help="PNG file to draw into")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, ["SPP.ENABLED", "True", *args.opts])
        dataset = build_datasets(cfg, crop_on_device=False).val
        if not 0 <= args.sample < len(dataset):
            raise UserError(f"--sample {args.sample} is not a validation sample (0 to {len(dataset) - 1})")
        indices, frames, result = obfuscate_sample(dataset, args.sample)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    name = dataset.names[args.sample]
    spp = cfg.SPP
    draw(indices, frames, result, f"{name}: {spp.BLEND} masks (threshold {spp.THRESHOLD:g}), {spp.NOISE} noise", args.out)
    print(json.dumps({"sample": name, "frames": indices.tolist(),
                      "hidden": [round(float(m.mean()), 4) for m in result.mask], "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
