"""Shared fixtures: tiny NTU-named frame folders and videos written into tmp_path."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from utils.config import load_config

TINY_SIDE = 24
TINY_FRAMES = 10


def moving_frames(seed: int, num_frames: int = TINY_FRAMES, height: int = TINY_SIDE,
                  width: int = TINY_SIDE + 8) -> np.ndarray:
    """Deterministic RGB uint8 [N, H, W, 3] frames: a smooth background and a moving square."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.uniform(40, 200, size=3)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        image = np.empty((height, width, 3))
        image[:] = base + 30 * np.sin((xx + 2 * t)[..., None] / 5.0)
        top, left = (2 * t) % (height - 6), (3 * t) % (width - 6)
        image[top:top + 6, left:left + 6] = 255
        frames[t] = np.clip(image, 0, 255)
    return frames


def write_frame_folder(folder: Path, frames: np.ndarray) -> None:
    """Writes RGB frames as 00000.jpg, 00001.jpg, ... (high quality)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{t:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])


def write_video(path: Path, frames: np.ndarray, fps: float = 10.0) -> None:
    """Writes RGB frames as an mp4v video."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


class ArrayClip:
    """A clip of gray uint8 frames ``[N, H, W]`` held in memory (the reader interface)."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames
        self.num_frames = len(frames)

    def read(self, indices: np.ndarray, gray: bool) -> np.ndarray:
        return self.frames[indices]

    def read_luma(self, indices: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        return self.frames[indices], (1.0, 0.0)


def tiny_names(setups: int = 2, performers: int = 3, actions: int = 3) -> list[str]:
    """NTU names over a small grid (camera 1, replication 1)."""
    return [f"S{s:03d}C001P{p:03d}R001A{a:03d}" for s in range(1, setups + 1)
            for p in range(1, performers + 1) for a in range(1, actions + 1)]


@pytest.fixture
def frames_root(tmp_path: Path) -> Path:
    """A DATA.ROOT of 18 NTU-named frame folders (setups 1-2: xset gives 9 train, 9 val)."""
    root = tmp_path / "frames"
    for i, name in enumerate(tiny_names()):
        write_frame_folder(root / name, moving_frames(i))
    return root


@pytest.fixture
def videos_root(tmp_path: Path) -> Path:
    """A DATA.ROOT of 18 NTU-named mp4 videos."""
    root = tmp_path / "videos"
    for i, name in enumerate(tiny_names()):
        write_video(root / f"{name}.mp4", moving_frames(i))
    return root


def tiny_config(root: Path, *opts: str):
    """The demo config pointed at ``root`` with tiny sizes; ``opts`` are more KEY VALUE pairs."""
    base = ["DATA.ROOT", str(root), "DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "16",
            "DATA.FD_STRIDE", "2", "DATA.NUM_WORKERS", "0", "DATA.NUM_CLASSES", "3",
            "MODEL.PRIVACY_CLASSES", "[3]", "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "4",
            "TEST.NUM_CLIP", "1", "DATA.SYNTHETIC.ENABLED", "False"]
    return load_config(None, base + list(opts))


def write_synthetic_layout(out: Path, names: list[str], layout: str) -> Path:
    """Writes the synthetic-set layout (``{raw,lps}/frames/<name>/`` for layout frames,
    ``{raw,lps}/videos/<name>.mp4`` for video, ``meta.json``) into ``out`` with tiny clips (the LPS
    copy is a blurred, darkened raw copy), so no generation runs."""
    for i, name in enumerate(names):
        raw = moving_frames(i)
        lps = np.stack([cv2.GaussianBlur(f, (5, 5), 2.0) // 2 + 40 for f in raw])
        for source, frames in (("raw", raw), ("lps", lps)):
            if layout == "frames":
                write_frame_folder(out / source / "frames" / name, frames)
            else:
                write_video(out / source / "videos" / f"{name}.mp4", frames)
    (out / "meta.json").write_text("{}")
    return out


class DataFactory:
    """The helpers above as one fixture object, so test modules need not import conftest."""

    ArrayClip = ArrayClip
    moving_frames = staticmethod(moving_frames)
    write_frame_folder = staticmethod(write_frame_folder)
    write_video = staticmethod(write_video)
    tiny_names = staticmethod(tiny_names)
    tiny_config = staticmethod(tiny_config)
    write_synthetic_layout = staticmethod(write_synthetic_layout)


@pytest.fixture
def make() -> DataFactory:
    """Helpers that write tiny clips and configs (see :class:`DataFactory`)."""
    return DataFactory()
