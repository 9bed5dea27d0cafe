"""IFNS (Inter-Frame Noise Suppression) input: three gray planes per sampled frame, on the device.

For a sampled frame index t and stride k (``DATA.FD_STRIDE``), with indices clamped to the clip:

- plane 1, fd(t-1) = |g(t-1) - g(t-1-k)|,
- plane 2, fd(t)   = |g(t) - g(t-k)|,
- plane 3, avg(t)  = mean of g(t-k+1), ..., g(t),

where g is the gray of the (degraded) frame. Frame differences cancel the static film veil and
background; the average keeps coarse appearance. All three planes need only the window of k + 2
frames t-k-1..t, which is what :class:`IFNSEncoder` asks the dataset for (:class:`FrameRequest`
offsets -k-1..0): with the window w, fd(t-1) = |w[k] - w[0]|, fd(t) = |w[k+1] - w[1]| and
avg(t) = mean(w[2..k+1]). The precomputed layout of the original release stores the three planes
as images; its items hold them as the window (F = 3) and the encoder only normalises them.

Normalisation (:class:`PlaneNorm`, ``DATA.PLANE_MEAN`` / ``DATA.PLANE_STD``): CLIP's, for CLIP
weights. CLIP normalisation of a gray value x (on the 0..1 scale) replicated on the three channels
and averaged after the per-channel normalisation is one affine map:
mean_c((x - m_c) / s_c) = x * mean_c(1 / s_c) - mean_c(m_c / s_c), that is a per-plane
``(x - mean) / std`` with mean = mean_c(m_c / s_c) / mean_c(1 / s_c) and std = 1 / mean_c(1 / s_c).
A model trained from scratch wants per-plane statistics of its dataset instead: under CLIP's map
the frame-difference planes sit near -1.6 with a spread of 0.08 (most differences are zero), an
offset that a randomly initialised patch embedding passes into every token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from models.encoders import CLIP_MEAN, CLIP_STD, FrameRequest, check_frames
from utils.misc import PIXEL_MAX

PLANES = 3  # fd(t-1), fd(t), avg(t)
WINDOW_EXTRA = 2  # a window holds k + 2 frames, t-k-1 .. t
GRAY_SCALE = sum(1.0 / s for s in CLIP_STD) / len(CLIP_STD)
GRAY_OFFSET = sum(m / s for m, s in zip(CLIP_MEAN, CLIP_STD)) / len(CLIP_STD)


@dataclass(frozen=True)
class PlaneNorm:
    """Per-plane normalisation ``(x / 255 - mean[k]) / std[k]`` of planes on the 0..255 scale.

    Args:
        mean: per-plane mean on the 0..1 scale (fd(t-1), fd(t), avg(t)); the default is CLIP's.
        std: per-plane standard deviation on the 0..1 scale; the default is CLIP's.
    """

    mean: tuple[float, ...] = (GRAY_OFFSET / GRAY_SCALE,) * PLANES
    std: tuple[float, ...] = (1.0 / GRAY_SCALE,) * PLANES

    def __post_init__(self) -> None:
        if len(self.mean) != PLANES or len(self.std) != PLANES:
            raise ValueError(f"plane mean and std need {PLANES} values each, got {self.mean} and {self.std}")
        if min(self.std) <= 0:
            raise ValueError(f"plane std must be positive, got {self.std}")

    @classmethod
    def from_lists(cls, mean: Sequence[float], std: Sequence[float]) -> "PlaneNorm":
        """``DATA.PLANE_MEAN`` / ``DATA.PLANE_STD``: both empty = CLIP's normalisation."""
        if not mean and not std:
            return cls()
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def affine(self) -> list[tuple[float, float]]:
        """Per plane ``(scale, shift)`` of the map ``x * scale + shift`` on the 0..255 scale."""
        return [(1.0 / (PIXEL_MAX * s), -m / s) for m, s in zip(self.mean, self.std)]


def window_offsets(stride: int) -> tuple[int, ...]:
    """The frames t-k-1, ..., t of a window, as offsets from t."""
    return tuple(range(-stride - 1, 1))


class IFNSEncoder(nn.Module):
    """MSPNet's input: uint8 frame windows -> normalised IFNS planes (no parameters).

    Args:
        stride: the frame-difference stride k.
        norm: the plane normalisation (CLIP's by default).
        precomputed: the items hold the precomputed planes of the original release (F = 3).
    """

    def __init__(self, stride: int, norm: PlaneNorm = PlaneNorm(), precomputed: bool = False) -> None:
        super().__init__()
        if stride < 1:
            raise ValueError(f"IFNS stride must be at least 1, got {stride}")
        self.stride = stride
        self.norm = norm
        offsets = (-1, 0, 0) if precomputed else window_offsets(stride)
        self.request = FrameRequest(offsets=offsets, gray=True, planes=precomputed)
        scale, shift = zip(*norm.affine())
        self.register_buffer("scale", torch.tensor(scale).view(PLANES, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(PLANES, 1, 1), persistent=False)

    def planes(self, frames: torch.Tensor) -> torch.Tensor:
        """The planes on the 0..255 scale, before normalisation.

        Args:
            frames: uint8 ``[B, T, k + 2, 1, H, W]`` windows t-k-1..t (precomputed: ``[B, T, 3, 1,
                H, W]`` planes).

        Returns:
            ``[B, T, 3, H, W]`` in the dtype of the module (float32 unless converted).
        """
        check_frames(frames, self.request)
        gray = frames[:, :, :, 0].to(self.scale.dtype)  # [B, T, F, H, W], in the model's float dtype
        if self.request.planes:
            return gray
        k = self.stride
        fd_prev = (gray[:, :, k] - gray[:, :, 0]).abs()  # [B, T, H, W]
        fd_now = (gray[:, :, k + 1] - gray[:, :, 1]).abs()
        avg = gray[:, :, WINDOW_EXTRA:].mean(dim=2)
        return torch.stack([fd_prev, fd_now, avg], dim=2)  # [B, T, 3, H, W]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised planes ``[B, T, 3, H, W]`` of uint8 windows (see :meth:`planes`)."""
        return torch.addcmul(self.shift, self.planes(frames), self.scale)
