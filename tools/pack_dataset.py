"""Packs the clips of a config into a packed store (uint8 grayscale frames in memory-mapped shards).

Every clip of the config's data (training and validation samples, read through the same readers
and the same grayscale conversion as the loader) is decoded once and appended to shard files; the
store appears at ``--out`` only when complete. Train from it with
``--opts DATA.LAYOUT packed DATA.PACKED_ROOT <out>``.

Example::

    python tools/pack_dataset.py --config configs/NTU/NTU120_XSet.yaml --out data/ntu120_packed
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

import cv2
import numpy as np
from tqdm import tqdm

from datasets.loader import RGB_LAYOUTS, build_datasets
from datasets.packed import DEFAULT_SHARD_BYTES, PackedWriter
from utils.config import load_config
from utils.errors import USER_ERROR_EXIT_CODE, UserError
from utils.logger import setup_logging

logger = logging.getLogger(__name__)

DECODE_CHUNK = 64  # frames decoded per read call (bounds memory on long, large videos)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=None, help="experiment YAML (default: the demo)")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE config overrides")
    parser.add_argument("--out", required=True, help="store folder to create")
    parser.add_argument("--shard-bytes", type=int, default=DEFAULT_SHARD_BYTES,
                        help="maximum shard size in bytes (a clip is never split)")
    parser.add_argument("--short-side", type=int, default=0,
                        help="resize frames so the short side is this many pixels (0 = keep)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def resize_short_side(frames: np.ndarray, short_side: int) -> np.ndarray:
    """Resizes uint8 frames [N, H, W] so that min(H, W) == ``short_side`` (area interpolation)."""
    height, width = frames.shape[1:]
    if min(height, width) == short_side:
        return frames
    scale = short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # cv2 takes (w, h)
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def decode_gray(clip, short_side: int = 0) -> np.ndarray:
    """All frames of an opened clip as uint8 gray [N, H, W], decoded in chunks of DECODE_CHUNK."""
    chunks = []
    for start in range(0, clip.num_frames, DECODE_CHUNK):
        frames = clip.read(np.arange(start, min(start + DECODE_CHUNK, clip.num_frames)), gray=True)
        chunks.append(resize_short_side(frames, short_side) if short_side else frames)
    return np.concatenate(chunks)


def pack(cfg, out: str, *, shard_bytes: int = DEFAULT_SHARD_BYTES, short_side: int = 0,
         overwrite: bool = False, progress: bool = True) -> dict:
    """Packs every training and validation clip of ``cfg`` into a store at ``out``.

    Args:
        cfg: experiment config (its ``DATA.LAYOUT`` must be video or frames).
        out: the store folder to create.
        shard_bytes: maximum shard size.
        short_side: resize frames to this short side first (0 = keep the decoded size).
        overwrite: replace an existing store.
        progress: show a progress bar with ETA.

    Returns:
        Summary: ``clips``, ``frames``, ``bytes``, ``seconds``.

    Raises:
        UserError: an unsupported layout, on-the-fly LPS, or unreadable data.
    """
    if cfg.DATA.LAYOUT not in RGB_LAYOUTS:
        raise UserError(f"DATA.LAYOUT {cfg.DATA.LAYOUT} cannot be packed: pack from the video or "
                        "frames layout (the packed store holds decoded grayscale frames)")
    if cfg.LPS.LEVEL:
        raise UserError("LPS.LEVEL > 0 simulates the film on RGB frames at load time; the packed "
                        "store holds grayscale frames: degrade the data with tools/lps.py first")
    splits = build_datasets(cfg)
    names = list(dict.fromkeys(splits.train.names + splits.val.names))
    opener = splits.train.opener
    metadata = {"source": str(splits.root), "layout": cfg.DATA.LAYOUT, "short_side": short_side}
    start = time.time()
    frames_total = bytes_total = 0
    with PackedWriter(out, shard_bytes, overwrite=overwrite, metadata=metadata) as writer:
        for name in tqdm(names, desc="packing", unit="clip", disable=not progress):
            frames = decode_gray(opener(name), short_side)  # [N, H, W] uint8
            writer.add(name, frames)
            frames_total += len(frames)
            bytes_total += frames.nbytes
    summary = {"clips": len(names), "frames": frames_total, "bytes": bytes_total,
               "seconds": round(time.time() - start, 3)}
    logger.info("packed %d clips (%d frames, %.1f MB) into %s in %.1f s", summary["clips"],
                frames_total, bytes_total / 1e6, out, summary["seconds"])
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(None)
    try:
        if args.shard_bytes < 1 or args.short_side < 0:
            raise UserError("--shard-bytes must be positive and --short-side not negative")
        cfg = load_config(args.config, args.opts)
        pack(cfg, args.out, shard_bytes=args.shard_bytes, short_side=args.short_side,
             overwrite=args.overwrite, progress=not args.no_progress)
    except UserError as exc:
        logger.error("%s", exc)
        return USER_ERROR_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
