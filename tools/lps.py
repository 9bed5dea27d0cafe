"""Degrades a folder of videos and/or JPEG frame folders as seen through laminating film (LPS), or
through another simulated privacy camera (``--device lensless | coded_aperture``,
:mod:`datasets.optics`).

The output mirrors the input: ``IN/a/b.mp4`` -> ``OUT/a/b.mp4`` (same fps, ``mp4v`` for .mp4,
``MJPG`` for .avi) and ``IN/x/clip/00001.jpg`` -> ``OUT/x/clip/00001.jpg``. The sensor noise of
each clip is seeded from ``--seed`` and the clip's relative path, so reruns give the same result.

Example::

    python tools/lps.py --input raw_videos --output lps_videos --level 2 --seed 0
    python tools/lps.py --input raw_videos --output lensless_videos --level 2 --device lensless
"""
from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from datasets.lps import MAX_LEVEL
from datasets.optics import CAMERAS, simulate_device
from utils.errors import USER_ERROR_EXIT_CODE, UserError

VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG"}  # suffix -> fourcc written
FRAME_SUFFIXES = (".jpg", ".jpeg")
JPEG_QUALITY = 95
CHUNK_FRAMES = 32  # frames degraded per batch
FALLBACK_FPS = 30.0  # written when a video does not report its frame rate


class LPSInputError(UserError):
    """The input folder is missing, empty, or holds an unreadable clip."""


def find_clips(root: Path) -> tuple[list[Path], list[Path]]:
    """Videos and frame folders under ``root`` (sorted, relative to ``root``)."""
    videos = sorted(p.relative_to(root) for p in root.rglob("*")
                    if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    folders = sorted(p.relative_to(root) for p in [root, *root.rglob("*")]
                     if p.is_dir() and any(c.suffix.lower() in FRAME_SUFFIXES for c in p.iterdir()))
    return videos, folders


def _degrade(frames: list[np.ndarray], level: int, generator: torch.Generator, device: str = "film") -> list[np.ndarray]:
    """BGR uint8 frames [H, W, 3] through the camera ``device``, in the same order and format."""
    batch = torch.from_numpy(np.stack(frames)[..., ::-1].copy()).permute(0, 3, 1, 2)  # [N, 3, H, W]
    out = simulate_device(batch, device, level, generator).permute(0, 2, 3, 1).numpy()[..., ::-1]
    return [np.ascontiguousarray(frame) for frame in out]


def _clip_generator(seed: int, relative: Path) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 2 ** 32 + zlib.crc32(relative.as_posix().encode()))


def degrade_video(src: Path, dst: Path, level: int, generator: torch.Generator, device: str = "film") -> int:
    """Writes the degraded copy of one video; returns its frame count."""
    capture = cv2.VideoCapture(str(src))
    if not capture.isOpened():
        raise LPSInputError(f"cannot open video {src}: check the file or remove it from the input")
    fps = capture.get(cv2.CAP_PROP_FPS) or FALLBACK_FPS
    writer, count, chunk = None, 0, []
    try:
        while True:
            ok, frame = capture.read()
            if ok:
                chunk.append(frame)
            if chunk and (not ok or len(chunk) == CHUNK_FRAMES):
                if writer is None:
                    height, width = chunk[0].shape[:2]
                    fourcc = cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[src.suffix.lower()])
                    writer = cv2.VideoWriter(str(dst), fourcc, fps, (width, height))
                for out in _degrade(chunk, level, generator, device):
                    writer.write(out)
                count += len(chunk)
                chunk = []
            if not ok:
                break
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if count == 0:
        raise LPSInputError(f"video {src} has no readable frame: check the file or remove it")
    return count


def degrade_folder(src: Path, dst: Path, level: int, generator: torch.Generator, device: str = "film") -> int:
    """Writes the degraded copy of one JPEG frame folder; returns its frame count."""
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    dst.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(files), CHUNK_FRAMES):
        names = files[start:start + CHUNK_FRAMES]
        frames = [cv2.imread(str(f)) for f in names]
        for name, frame in zip(names, frames):
            if frame is None:
                raise LPSInputError(f"cannot read frame {name}: check the file or remove it")
        if len({f.shape for f in frames}) > 1:
            raise LPSInputError(f"frames of {src} differ in size: resize them to one size")
        for name, out in zip(names, _degrade(frames, level, generator, device)):
            cv2.imwrite(str(dst / name.name), out, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return len(files)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="folder of videos / frame folders")
    parser.add_argument("--output", type=Path, required=True, help="destination (mirrors the input)")
    parser.add_argument("--level", type=int, required=True, choices=range(1, MAX_LEVEL + 1),
                        help="film layers (other devices: the PSF's extent, 1/8, 1/4, 1/2 of the frame side)")
    parser.add_argument("--device", choices=CAMERAS, default="film", help="the simulated privacy camera")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sensor noise")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Degrades every clip under ``args.input``; returns the number of clips."""
    if not args.input.is_dir():
        raise LPSInputError(f"input folder {args.input} does not exist: pass --input DIR")
    videos, folders = find_clips(args.input)
    if not videos and not folders:
        raise LPSInputError(f"no *.mp4/*.avi video or JPEG frame folder under {args.input}")
    clips = [(v, degrade_video) for v in videos] + [(f, degrade_folder) for f in folders]
    for relative, degrade in tqdm(clips, desc=f"{args.device} level {args.level}", unit="clip"):
        dst = args.output / relative
        dst.parent.mkdir(parents=True, exist_ok=True)
        degrade(args.input / relative, dst, args.level, _clip_generator(args.seed, relative), args.device)
    return len(clips)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        count = run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    print(f"degraded {count} clips to {args.output} ({args.device}, level {args.level})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
