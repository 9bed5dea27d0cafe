"""Makes a Selective Privacy Preservation template: the mean DINO descriptor of a region.

Usage:
    python tools/make_spp_template.py --image IMG --box X0 Y0 X1 Y1 --weights DINO.pth --out T.pt
    python tools/make_spp_template.py --sample NAME --frame 10 --box X0 Y0 X1 Y1 --out T.pt \\
        [--config CFG] [--opts SPP.WEIGHTS DINO.pth ...]

The box is in the image's pixels (x1, y1 exclusive); the template is the mean descriptor
(``SPP.ARCH``, ``SPP.FACET`` of ``SPP.LAYER``, at ``SPP.STRIDE`` and ``SPP.INPUT_SIZE``) of the
descriptor cells whose centres lie in it. The release clicks one cell instead (``save_descriptor``):
a box of one cell does the same. ``--sample`` takes frame ``--frame`` of a sample of the configured
data (after ``LPS.LEVEL`` film: what SPP sees). ``--append`` adds the template to those already
in ``--out`` (the file holds ``[K, D]``; the saliency averages over the K). Prints one JSON line:
the file, its template count, and the new template's mean saliency inside and outside the box.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from datasets.dataset import sample_rng
from datasets.loader import build_datasets
from datasets.spp import build_features
from models.dino import box_cells, load_templates, region_template, save_templates, similarity
from utils.config import load_config
from utils.errors import USER_ERROR_EXIT_CODE, UserError


def read_image(path: str) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` of an image file."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot read image {path}; pass a PNG or JPEG file to --image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def sample_frame(cfg, name: str, frame: int) -> np.ndarray:
    """Frame ``frame`` (uint8 RGB ``[H, W, 3]``) of sample ``name`` of the configured data, after
    the film simulation of its first epoch."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.SPP.ENABLED = False  # the template is made from what SPP sees, not from its output
    splits = build_datasets(cfg, crop_on_device=False)
    for dataset in (splits.train, splits.val):
        if name in dataset.names:
            index = dataset.names.index(name)
            clip = dataset.wrap(dataset.opener(name), sample_rng(dataset.seed, 0, index))
            if not 0 <= frame < clip.num_frames:
                raise UserError(f"--frame {frame} is not a frame of {name} (0 to {clip.num_frames - 1})")
            return clip.read(np.array([frame]), gray=False)[0]
    raise UserError(f"--sample {name} is not a sample of the configured data (DATA.ROOT, DATA.LAYOUT)")


def make_template(cfg, image: np.ndarray, box: tuple[float, ...], weights: str | None) -> tuple[torch.Tensor, dict]:
    """The template of ``box`` in ``image`` and figures about it.

    Args:
        cfg: the experiment config (``SPP.*``).
        image: uint8 RGB ``[H, W, 3]``.
        box: ``(x0, y0, x1, y1)`` in pixels.
        weights: the DINO weights file (None = ``SPP.WEIGHTS``).

    Returns:
        ``(template [D], figures)``: the cells used and the template's mean saliency in and
        outside the box.
    """
    x0, y0, x1, y1 = box
    height, width = image.shape[:2]
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise UserError(f"--box {x0:g} {y0:g} {x1:g} {y1:g} is not inside the {width}x{height} image "
                        "(x0 < x1 <= width, y0 < y1 <= height)")
    features = build_features(cfg, weights)
    descriptors = features(torch.from_numpy(image).permute(2, 0, 1)[None])[0]  # [h, w, D]
    template = region_template(descriptors, box, (height, width))
    inside = box_cells(box, descriptors.shape[:2], (height, width))
    saliency = similarity(descriptors[None], template[None])[0]
    figures = {"cells": int(inside.sum()), "grid": list(descriptors.shape[:2]), "dim": features.dim,
               "saliency_in_box": round(float(saliency[inside].mean()), 4),
               "saliency_outside": round(float(saliency[~inside].mean()), 4) if (~inside).any() else None}
    return template, figures


def main(argv: list[str] | None = None) -> int:
    """Writes the template file; returns the exit code (2 on a user error).

    Args:
        argv: command-line arguments (None = ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="", help="image file to take the region from")
    parser.add_argument("--sample", default="", help="or: a sample name of the configured data")
    parser.add_argument("--frame", type=int, default=0, help="frame of --sample")
    parser.add_argument("--box", type=float, nargs=4, required=True, metavar=("X0", "Y0", "X1", "Y1"))
    parser.add_argument("--weights", default=None, help="local DINO ViT weights (default: SPP.WEIGHTS)")
    parser.add_argument("--out", required=True, type=Path, help="template file to write (torch tensor)")
    parser.add_argument("--append", action="store_true", help="add to the templates already in --out")
    parser.add_argument("--config", default=None, help="experiment YAML (default: the demo)")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides (SPP.ARCH ...)")
    args = parser.parse_args(argv)
    try:
        if bool(args.image) == bool(args.sample):
            raise UserError("pass one of --image IMG or --sample NAME")
        cfg = load_config(args.config, args.opts)
        image = read_image(args.image) if args.image else sample_frame(cfg, args.sample, args.frame)
        template, figures = make_template(cfg, image, tuple(args.box), args.weights)
        templates = template[None]
        if args.append and args.out.is_file():
            templates = torch.cat([load_templates(args.out, template.numel()), templates])
        save_templates(args.out, templates)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    print(json.dumps({"out": str(args.out), "templates": len(templates), **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
