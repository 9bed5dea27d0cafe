"""Prints the markdown table of MSPNet sizes: parameters and FLOPs per clip.

Usage: ``python tools/model_sizes.py [--frames 8] [--classes 120] [--identities 106]``

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on meta tensors (no memory,
no weights): one clip of ``--frames`` frames at the size's native input side, forward only, with
the class text features already cached (the text tower frozen, as in training with
``MODEL.FREEZE [text]``). The text tower's one-off cost for all class names is a separate column.
A multiply-add counts as 2 FLOPs; attention is counted through the ``math`` backend (its matmuls),
softmax, LayerNorm and activations are not counted.
"""
from __future__ import annotations

import argparse
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from models.clip import CLIP_SIZES, ClipSize
from models.mspnet import MSPNet
from utils.config import load_config

GIGA = 1e9
MEGA = 1e6


def _custom_size() -> tuple[ClipSize, int]:
    cfg = load_config()  # the embedded demo's custom size
    custom = cfg.MODEL.CUSTOM
    size = ClipSize(embed_dim=custom.EMBED_DIM, width=custom.WIDTH, layers=custom.LAYERS,
                    patch_size=custom.PATCH_SIZE, image_size=cfg.DATA.INPUT_SIZE,
                    text_width=custom.TEXT_WIDTH, text_layers=custom.TEXT_LAYERS,
                    context_length=custom.CONTEXT_LENGTH)
    return size, cfg.DATA.INPUT_SIZE


def count(size: ClipSize, image_size: int, frames: int, classes: int, identities: int) -> dict[str, float]:
    """Parameters (total, CLIP towers, new modules) and forward FLOPs of one clip.

    Args:
        size: tower sizes.
        image_size: input side in pixels.
        frames: frames T of the clip.
        classes: action classes K (text features and prompts).
        identities: identity head outputs P.
    """
    with torch.device("meta"):
        model = MSPNet(size=size, image_size=image_size, num_frames=frames,
                       class_names=[f"class {k}" for k in range(classes)], privacy_heads={"identity": identities},
                       backend="math")
        model.freeze(["text"])
        with FlopCounterMode(display=False) as text_counter:
            model.class_text_features()
        with FlopCounterMode(display=False) as clip_counter:
            model(torch.empty(1, frames, 3, image_size, image_size))
    new = model.new_parameter_names()
    params = dict(model.named_parameters())
    return {
        "params": sum(p.numel() for p in params.values()),
        "clip_params": sum(p.numel() for n, p in params.items() if n not in new),
        "new_params": sum(params[n].numel() for n in new),
        "clip_flops": clip_counter.get_total_flops(),
        "text_flops": text_counter.get_total_flops(),
    }


def table(frames: int, classes: int, identities: int) -> str:
    """The markdown table for every size (OpenAI sizes at their native side, then custom)."""
    rows = [(name, size, size.image_size) for name, size in CLIP_SIZES.items()]
    custom, side = _custom_size()
    rows.append(("custom (demo)", custom, side))
    lines = [f"| MODEL.ARCH | input | params (M) | CLIP towers (M) | new modules (M) | "
             f"GFLOPs per clip (T={frames}) | text GFLOPs ({classes} classes, once) |",
             "|---|---|---|---|---|---|---|"]
    for name, size, side in rows:
        c = count(size, side, frames, classes, identities)
        lines.append(f"| {name} | {side} | {c['params'] / MEGA:.1f} | {c['clip_params'] / MEGA:.1f} | "
                     f"{c['new_params'] / MEGA:.1f} | {c['clip_flops'] / GIGA:.1f} | "
                     f"{c['text_flops'] / GIGA:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frames per clip")
    parser.add_argument("--classes", type=int, default=120, help="action classes K")
    parser.add_argument("--identities", type=int, default=106, help="identity head outputs P")
    args = parser.parse_args(argv)
    print(table(args.frames, args.classes, args.identities))
    return 0


if __name__ == "__main__":
    sys.exit(main())
