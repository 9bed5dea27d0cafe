"""RGB frame pairs for the baseline input encoders (``MODEL.ENCODER`` rgb | downsample | bdq).

The baselines see colour frames rather than IFNS planes: for each sampled frame t the pair
(frame t - k, frame t), k = ``DATA.FD_STRIDE`` (indices clamped to the clip), CLIP-normalised per
channel. :class:`models.encoders.BDQEncoder` takes the difference inside the model (its blur is
learned), the other two use frame t only. Items are [T, 2, 3, S, S]; the spatial crop, flip and
jitter of a sample are the same for every frame, as for the planes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from datasets.ifns import CLIP_MEAN, CLIP_STD, PIXEL_MAX
from datasets.lps import simulate_lps
from datasets.transforms import CropBox, Jitter, apply_jitter, crop_resize

SEED_BITS = 63


def pair_frames(indices: np.ndarray, stride: int, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The frames a set of pairs reads.

    Args:
        indices: ``[..., T]`` sampled frame indices t (e.g. ``[C, T]`` for C temporal views).
        stride: the difference stride k.
        num_frames: frames in the clip (indices are clamped to it).

    Returns:
        ``(frame_ids [U], positions [..., T, 2])``: the sorted distinct frames to decode, and for
        each pair the rows of t - k and t in ``frame_ids``.
    """
    indices = np.asarray(indices, dtype=np.int64)
    wanted = np.clip(np.stack([indices - stride, indices], axis=-1), 0, num_frames - 1)  # [..., T, 2]
    frame_ids = np.unique(wanted)
    return frame_ids, np.searchsorted(frame_ids, wanted)


def normalize_rgb(frames: np.ndarray) -> np.ndarray:
    """CLIP normalisation of ``[..., H, W, 3]`` RGB on the 0..255 scale -> float32 ``[..., 3, H, W]``."""
    mean = np.asarray(CLIP_MEAN, dtype=np.float32) * PIXEL_MAX
    std = np.asarray(CLIP_STD, dtype=np.float32) * PIXEL_MAX
    out = (frames.astype(np.float32) - mean) / std
    return np.moveaxis(out, -1, -3).astype(np.float32)


def degrade_rgb(frames: np.ndarray, lps_level: int, generator: torch.Generator | None) -> np.ndarray:
    """On-the-fly LPS simulation of uint8 ``[U, H, W, 3]`` frames (level 0 returns them)."""
    if lps_level == 0:
        return frames
    rgb = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # [U, 3, H, W]
    return simulate_lps(rgb, lps_level, generator).permute(0, 2, 3, 1).contiguous().numpy()


def rgb_pair_clip(frames: np.ndarray, positions: np.ndarray, box: CropBox, size: int,
                  jitter: Jitter | None = None) -> np.ndarray:
    """Crops, resizes, jitters and normalises the pairs of one view.

    Args:
        frames: uint8 ``[U, H, W, 3]`` decoded frames (``frame_ids`` of :func:`pair_frames`).
        positions: ``[T, 2]`` rows of (t - k, t) in ``frames``.
        box: the crop (and flip) of this view.
        size: output side S.
        jitter: brightness/contrast jitter (training) or None.

    Returns:
        float32 ``[T, 2, 3, S, S]`` CLIP-normalised pairs.
    """
    crops = crop_resize(frames, box, size)  # [U, S, S, 3]
    if jitter is not None:
        u = crops.shape[0]
        planes = np.moveaxis(crops, -1, 1).reshape(u * 3, size, size).astype(np.float32)
        crops = np.moveaxis(apply_jitter(planes, jitter).reshape(u, 3, size, size), 1, -1)
    return normalize_rgb(crops[positions])  # [T, 2, S, S, 3] -> [T, 2, 3, S, S]


def rgb_pair_views(clip, indices: np.ndarray, *, stride: int, size: int, lps_level: int,
                   make_boxes: Callable[[int, int], list[CropBox]], jitter: Jitter | None,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """All views of one sample as RGB pairs, from one decode (the dataset's entry point).

    Args:
        clip: an opened sample (:class:`datasets.readers.Clip`).
        indices: ``[C, T]`` sampled frames of the C temporal views.
        stride: the difference stride k (``DATA.FD_STRIDE``).
        size: output side S.
        lps_level: on-the-fly film simulation (``LPS.LEVEL``, 0 = off).
        make_boxes: ``(height, width) -> crops`` (one in training, ``TEST.NUM_CROP`` at test).
        jitter: brightness/contrast jitter (training) or None.
        rng: the sample's generator (seeds the film noise).

    Returns:
        C x crops float32 ``[T, 2, 3, S, S]`` views, clip-major (view = clip * num_crop + crop).
    """
    frame_ids, positions = pair_frames(indices, stride, clip.num_frames)  # [C, T, 2]
    generator = torch.Generator().manual_seed(int(rng.integers(2 ** SEED_BITS)))
    frames = degrade_rgb(clip.read(frame_ids, gray=False), lps_level, generator)  # [U, H, W, 3]
    boxes = make_boxes(frames.shape[1], frames.shape[2])
    return [rgb_pair_clip(frames, clip_positions, box, size, jitter)
            for clip_positions in positions for box in boxes]
