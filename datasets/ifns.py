"""IFNS input: three grayscale planes per sampled frame, derived from one decode.

For a sampled frame index t and stride k (``DATA.FD_STRIDE``), with indices clamped to the clip:

- plane 1, fd(t-1) = |g(t-1) - g(t-1-k)|,
- plane 2, fd(t)   = |g(t) - g(t-k)|,
- plane 3, avg(t)  = mean of g(t-k+1), ..., g(t),

where g is the grayscale of the (degraded) frame. All three planes of all sampled frames need only
the frames t-k-1..t, so :func:`needed_frames` gives the union to decode once.

CLIP normalisation of a gray value x (on the 0..1 scale) replicated on the three channels and
averaged after the per-channel normalisation is one affine map:
mean_c((x - m_c) / s_c) = x * mean_c(1 / s_c) - mean_c(m_c / s_c).
"""
from __future__ import annotations

import numpy as np

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PIXEL_MAX = 255.0
GRAY_SCALE = float(np.mean([1.0 / s for s in CLIP_STD]))
GRAY_OFFSET = float(np.mean([m / s for m, s in zip(CLIP_MEAN, CLIP_STD)]))


def needed_frames(indices: np.ndarray, stride: int, num_frames: int) -> np.ndarray:
    """The sorted distinct frames (t-k-1..t for every t, clamped) that the planes of ``indices`` read.

    Args:
        indices: sampled frame indices t, any shape.
        stride: the frame-difference stride k.
        num_frames: frames in the clip.
    """
    offsets = np.arange(-stride - 1, 1)  # t-k-1 .. t
    wanted = np.asarray(indices, dtype=np.int64).reshape(-1, 1) + offsets
    return np.unique(np.clip(wanted, 0, num_frames - 1))


def ifns_planes(gray: np.ndarray, frame_ids: np.ndarray, indices: np.ndarray, stride: int,
                num_frames: int) -> np.ndarray:
    """Computes the planes fd(t-1), fd(t), avg(t) for each sampled t.

    Args:
        gray: float32 ``[U, H, W]`` gray frames (0..255 scale) of the sorted frame ids ``frame_ids``,
            which must include :func:`needed_frames` of ``indices``.
        frame_ids: ``[U]`` sorted frame indices of ``gray``.
        indices: ``[T]`` sampled frame indices t.
        stride: the frame-difference stride k.
        num_frames: frames in the clip (for clamping).

    Returns:
        float32 ``[T, 3, H, W]`` planes on the 0..255 scale.
    """
    indices = np.asarray(indices, dtype=np.int64)

    def at(frame: np.ndarray) -> np.ndarray:
        return np.searchsorted(frame_ids, np.clip(frame, 0, num_frames - 1))

    fd_prev = np.abs(gray[at(indices - 1)] - gray[at(indices - 1 - stride)])  # [T, H, W]
    fd_now = np.abs(gray[at(indices)] - gray[at(indices - stride)])  # [T, H, W]
    window = indices[:, None] - np.arange(stride)[None, :]  # [T, k]: t, t-1, ..., t-k+1
    avg = gray[at(window)].mean(axis=1)  # [T, k, H, W] -> [T, H, W]
    return np.stack([fd_prev, fd_now, avg], axis=1).astype(np.float32)  # [T, 3, H, W]


def normalize_planes(planes: np.ndarray) -> np.ndarray:
    """CLIP normalisation of gray planes on the 0..255 scale (see the module docstring)."""
    return (planes * (GRAY_SCALE / PIXEL_MAX) - GRAY_OFFSET).astype(np.float32)


def denormalize_planes(planes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize_planes` (for pictures): back to the 0..255 scale."""
    return (planes + GRAY_OFFSET) * (PIXEL_MAX / GRAY_SCALE)
