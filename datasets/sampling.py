"""Temporal sampling: T equal segments, random in training, centred (or shifted) at test time.

Frame 0 has no frame difference, so segments cover frames 1..n-1 (a one-frame clip gives 0).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

TEST_VIEW_CACHE = 4096  # clip lengths whose test indices are kept


def _segments(num_frames: int, num_segments: int) -> tuple[int, float]:
    """First usable frame and segment length over the usable frames 1..n-1."""
    first = 1 if num_frames > 1 else 0
    return first, (num_frames - first) / num_segments


def train_indices(num_frames: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """One uniform random frame in each of ``num_segments`` equal segments.

    Args:
        num_frames: frames in the clip.
        num_segments: T.
        rng: the sample's generator.

    Returns:
        int64 ``[T]`` non-decreasing indices in [1, n-1] (0 only for a one-frame clip).
    """
    first, length = _segments(num_frames, num_segments)
    starts = first + np.arange(num_segments) * length
    draws = starts + rng.random(num_segments) * length
    return np.minimum(np.maximum(draws.astype(np.int64), first), num_frames - 1)  # floor: draws >= 0


def eval_indices(num_frames: int, num_segments: int, num_clips: int = 1) -> np.ndarray:
    """Deterministic indices of ``num_clips`` temporal views; view c sits at offset (c + 0.5) / C
    inside each segment, so one view gives the segment centres.

    Returns:
        int64 ``[C, T]`` indices.
    """
    first, length = _segments(num_frames, num_segments)
    offsets = (np.arange(num_clips)[:, None] + 0.5) / num_clips  # [C, 1]
    positions = first + (np.arange(num_segments)[None, :] + offsets) * length  # [C, T]
    return np.clip(np.floor(positions).astype(np.int64), first, num_frames - 1)


@dataclass(frozen=True)
class FrameSampler:
    """The temporal sampler of a split: ``(frames in the clip, generator) -> indices [C, T]``.

    Args:
        num_frames: T.
        train: one random draw per segment (C = 1); else ``num_clip`` deterministic views.
        num_clip: temporal test views C.
    """

    num_frames: int
    train: bool
    num_clip: int = 1

    @property
    def num_views(self) -> int:
        """Temporal views per item (1 in training)."""
        return 1 if self.train else self.num_clip

    def __call__(self, num_frames_in_clip: int, rng: np.random.Generator | None) -> np.ndarray:
        """Indices ``[C, T]`` of a clip of ``num_frames_in_clip`` frames (``rng``: the sample's
        generator, unused at test time)."""
        if self.train:
            return train_indices(num_frames_in_clip, self.num_frames, rng)[None]
        return _test_views(num_frames_in_clip, self.num_frames, self.num_clip)


@functools.lru_cache(maxsize=TEST_VIEW_CACHE)
def _test_views(num_frames: int, num_segments: int, num_clips: int) -> np.ndarray:
    """:func:`eval_indices`, computed once per clip length (read-only)."""
    views = eval_indices(num_frames, num_segments, num_clips)
    views.flags.writeable = False
    return views
