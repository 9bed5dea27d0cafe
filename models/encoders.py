"""Input encoders: the module that turns the dataset's raw uint8 frames into the model's input.

The dataset hands over, for every sampled frame index t, the raw frames an encoder asks for
(:class:`FrameRequest`: offsets from t, gray or RGB), cropped and flipped, as uint8
``frames [B, T, F, C, H, W]`` (F = len(offsets), C = 1 gray or 3 RGB). The encoder runs on the
model's device inside the model and returns normalised float ``[B, T, 3, H, W]``:

- :class:`models.ifns.IFNSEncoder`: MSPNet's three IFNS planes (``MODEL.ENCODER ifns``).
- :class:`RGBEncoder`: frame t, CLIP-normalised (no privacy; the upper bound of action accuracy).
- :class:`DownsampleEncoder`: frame t area-averaged to ``size`` x ``size`` and upsampled back
  bilinearly (extreme low resolution, Ryoo et al.).
- :class:`models.bdq.BDQEncoder`: Blur, Difference, Quantisation (Kumawat and Nagahara, ECCV 2022).

:func:`models.build_input_encoder` picks one from ``MODEL.ENCODER``; a new baseline is one new
encoder class with its :class:`FrameRequest`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from utils.misc import PIXEL_MAX

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RGB = 3


@dataclass(frozen=True)
class FrameRequest:
    """Which raw frames an encoder reads for each sampled frame index t.

    Args:
        offsets: frame offsets from t (indices clamped to the clip), in the order of the F axis.
        gray: one gray channel (C = 1); else RGB (C = 3).
        planes: the item holds precomputed planes instead of frames (``DATA.LAYOUT precomputed``:
            fd(t-1), fd(t), avg(t) as F = 3 gray "frames").
        consecutive: the encoder differences consecutive sampled frames, so it returns T - 1
            frames for T sampled ones (BDQ).
    """

    offsets: tuple[int, ...]
    gray: bool
    planes: bool = False
    consecutive: bool = False

    def output_frames(self, num_frames: int) -> int:
        """Frames of the encoder's output for ``num_frames`` sampled frames (the model's T)."""
        return num_frames - 1 if self.consecutive else num_frames

    @property
    def channels(self) -> int:
        """C of the item's frames."""
        return 1 if self.gray else RGB


def check_frames(frames: torch.Tensor, request: FrameRequest) -> None:
    """Raises ValueError unless ``frames`` is ``[B, T, F, C, H, W]`` for ``request``."""
    count = len(request.offsets)
    if frames.ndim != 6 or frames.shape[2] != count or frames.shape[3] != request.channels:
        raise ValueError(f"the input encoder expects frames [B, T, {count}, {request.channels}, H, W], "
                         f"got {tuple(frames.shape)}")


def clip_normalize(frames: torch.Tensor) -> torch.Tensor:
    """CLIP's per-channel normalisation of uint8 RGB ``[..., 3, H, W]`` -> float32, same shape."""
    mean = torch.tensor(CLIP_MEAN, device=frames.device) * PIXEL_MAX
    std = torch.tensor(CLIP_STD, device=frames.device) * PIXEL_MAX
    return (frames.float() - mean[:, None, None]) / std[:, None, None]


class RGBEncoder(nn.Module):
    """Plain frames: frame t, CLIP-normalised (no privacy protection)."""

    request = FrameRequest(offsets=(0,), gray=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Args:
            frames: uint8 ``[B, T, 1, 3, H, W]``.

        Returns:
            float32 ``[B, T, 3, H, W]``.
        """
        check_frames(frames, self.request)
        return clip_normalize(frames[:, :, 0])


class DownsampleEncoder(nn.Module):
    """Extreme low resolution: frame t area-downsampled to ``size`` px and upsampled bilinearly.

    Args:
        size: side of the low-resolution image in pixels.
    """

    request = FrameRequest(offsets=(0,), gray=False)

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"downsample size must be at least 1, got {size}")
        self.size = size

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Args:
            frames: uint8 ``[B, T, 1, 3, H, W]``.

        Returns:
            float32 ``[B, T, 3, H, W]`` frame t carrying only ``size`` x ``size`` worth of detail.
        """
        check_frames(frames, self.request)
        b, t, _, c, h, w = frames.shape
        x = clip_normalize(frames[:, :, 0]).reshape(b * t, c, h, w)
        low = F.adaptive_avg_pool2d(x, (self.size, self.size))  # [B*T, 3, size, size]
        up = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
        return up.reshape(b, t, c, h, w)
