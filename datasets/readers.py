"""Clip readers: the :class:`Clip` protocol, JPEG frame folders, precomputed fd/avg.

Every reader opens one sample and reads a set of frame indices in one pass, so one decode serves
all three IFNS planes. Frames come back as uint8 arrays, ``[N, H, W]`` gray or ``[N, H, W, 3]`` RGB.
A missing or corrupt file raises :class:`DataError` naming the sample and the file. Video files
are read by :class:`datasets.video.VideoClip` (decord, opencv, or opencv's luma plane).

Precomputed layout (the original release): ``<FD_ROOT>/<sample>/<i>.jpg`` and
``<AVG_ROOT>/<sample>/<i>.jpg`` where ``i`` is the frame index t. Releases number the files from
0 or from 1; the reader takes the smallest number in the folder as frame 0 (so both work), and
file ``fd/<sample>/<base + t>.jpg`` holds fd(t).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from utils.errors import UserError

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
# levels (scale, offset) of gray = scale * Y + offset
GRAY_LEVELS = (1.0, 0.0)  # full range (and any gray frame): Y is the gray
Levels = tuple[float, float]
LEVEL_FIELDS = 2  # levels as floats: scale, offset


class DataError(UserError):
    """A missing, empty or corrupt sample file; the message names the sample and the file."""


class Clip(Protocol):
    """One opened sample whose frames can be read by index."""

    num_frames: int

    def read(self, indices: np.ndarray, gray: bool) -> np.ndarray:
        """Returns frames ``indices`` as uint8 ``[N, H, W]`` (gray) or ``[N, H, W, 3]`` (RGB)."""

    def read_luma(self, indices: np.ndarray) -> tuple[np.ndarray, Levels]:
        """Returns uint8 ``[N, H, W]`` frames ``indices`` and the levels ``(scale, offset)`` that
        map them to gray (``gray = scale * frame + offset``, clamped to 0..255)."""


def to_gray(frames_rgb: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] uint8 RGB -> [N, H, W] uint8 gray (ITU-R 601 luma, as opencv and JPEG)."""
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames_rgb])


def list_frame_files(folder: str | Path, sample: str) -> list[str]:
    """The image files (paths as strings: cheap for long clips) of a frame folder, sorted by name.

    Raises:
        DataError: the folder is missing or holds no image.
    """
    folder = Path(folder)
    try:
        entries = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"sample {sample}: frame folder {folder} not found") from None
    files = [os.path.join(folder, n) for n in sorted(entries) if n.lower().endswith(FRAME_EXTENSIONS)]
    if not files:
        raise DataError(f"sample {sample}: frame folder {folder} holds no .jpg/.png frame")
    return files


def read_image(path: str | Path, sample: str, gray: bool) -> np.ndarray:
    """Reads one image as uint8 ``[H, W]`` gray or ``[H, W, 3]`` RGB.

    Raises:
        DataError: the file is missing or cannot be decoded.
    """
    image = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"sample {sample}: cannot read image file {path} (missing or corrupt)")
    return image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_images(files: list[str], indices: np.ndarray, sample: str, gray: bool) -> np.ndarray:
    """Decodes each distinct index once and returns the stack in ``indices`` order."""
    unique, inverse = np.unique(indices, return_inverse=True)
    decoded = [read_image(files[int(i)], sample, gray) for i in unique]
    shapes = {d.shape for d in decoded}
    if len(shapes) > 1:
        raise DataError(f"sample {sample}: frames of {os.path.dirname(files[0])} differ in size "
                        f"{sorted(shapes)}")
    stacked = np.stack(decoded)
    return stacked if np.array_equal(unique, indices) else stacked[inverse]


class FrameFolderClip:
    """A folder of image frames (sorted file names give the frame order).

    Args:
        folder: the frame folder.
        sample: the sample name used in error messages.
    """

    def __init__(self, folder: str | Path, sample: str) -> None:
        self.sample = sample
        self.files = list_frame_files(folder, sample)
        self.num_frames = len(self.files)

    def read(self, indices: np.ndarray, gray: bool) -> np.ndarray:
        """Reads frames ``indices``; gray frames are decoded gray directly (faster)."""
        return _read_images(self.files, np.asarray(indices, dtype=np.int64), self.sample, gray)

    def read_luma(self, indices: np.ndarray) -> tuple[np.ndarray, Levels]:
        """Gray frames ``indices`` (see :class:`Clip`)."""
        return self.read(indices, gray=True), GRAY_LEVELS


def _numbered_files(folder: str, sample: str) -> dict[int, str]:
    """``{frame number: file name}`` of a precomputed folder, from one ``os.listdir`` (no pathlib:
    this runs on every open of a sample).

    Raises:
        DataError: the folder is missing, holds no image, or an image name is not an integer.
    """
    try:
        entries = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"sample {sample}: frame folder {folder} not found") from None
    numbered = {}
    for entry in entries:
        stem, ext = os.path.splitext(entry)
        if ext.lower() not in FRAME_EXTENSIONS:
            continue
        try:
            numbered[int(stem)] = entry
        except ValueError:
            raise DataError(f"sample {sample}: precomputed folder {folder} must hold files named "
                            "<i>.jpg with an integer frame index i") from None
    if not numbered:
        raise DataError(f"sample {sample}: frame folder {folder} holds no .jpg/.png frame")
    return numbered


class PrecomputedClip:
    """The precomputed fd/avg planes of the original release (see the module docstring).

    Each file is decoded straight to one channel (``IMREAD_GRAYSCALE``, as the frame readers do:
    for a gray JPEG that is the stored channel, for a colour JPEG the decoder's luma), which is
    what makes this reader as fast as a plain opencv read of the 3T files.

    Args:
        fd_dir: ``<FD_ROOT>/<sample>``, frame differences ``<i>.jpg``.
        avg_dir: ``<AVG_ROOT>/<sample>``, temporal averages ``<i>.jpg``.
        sample: the sample name used in error messages.
    """

    def __init__(self, fd_dir: str | Path, avg_dir: str | Path, sample: str) -> None:
        self.sample = sample
        self.fd_dir, self.avg_dir = os.fspath(fd_dir), os.fspath(avg_dir)
        self._fd = _numbered_files(self.fd_dir, sample)
        self._avg = _numbered_files(self.avg_dir, sample)
        self._fd_base, self._avg_base = min(self._fd), min(self._avg)
        self.num_frames = min(len(self._fd), len(self._avg))

    def _path(self, folder: str, numbered: dict[int, str], number: int) -> str:
        return os.path.join(folder, numbered.get(number, f"{number}.jpg"))

    def read_planes(self, indices: np.ndarray) -> np.ndarray:
        """Returns the uint8 planes ``[T, 3, H, W]``: fd(t-1), fd(t), avg(t) for each index t.

        Raises:
            DataError: a missing or corrupt file, or files of different sizes.
        """
        indices = np.asarray(indices, dtype=np.int64)
        previous = np.clip(indices - 1, 0, self.num_frames - 1)
        files = [[self._path(self.fd_dir, self._fd, self._fd_base + int(p)),
                  self._path(self.fd_dir, self._fd, self._fd_base + int(t)),
                  self._path(self.avg_dir, self._avg, self._avg_base + int(t))]
                 for p, t in zip(previous, indices)]  # [T][3]
        out = None
        for t, row in enumerate(files):
            for plane, path in enumerate(row):
                image = read_image(path, self.sample, gray=True)  # [H, W]
                if out is None:
                    out = np.empty((len(files), len(row)) + image.shape, np.uint8)  # [T, 3, H, W]
                elif image.shape != out.shape[2:]:
                    raise DataError(f"sample {self.sample}: precomputed file {path} has size "
                                    f"{image.shape}, the others {out.shape[2:]}")
                out[t, plane] = image
        return out
