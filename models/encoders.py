"""Baseline input encoders: what the action model sees instead of MSPNet's IFNS planes.

Every encoder maps a pair of normalised RGB frames per sampled time step, ``frames``
[B, T, 2, 3, H, W] (index 0 = frame t - k, index 1 = frame t, k = ``DATA.FD_STRIDE``), to the
model input [B, T, 3, H, W]:

- :class:`RGBEncoder`: frame t unchanged (no privacy; the upper bound of action accuracy).
- :class:`DownsampleEncoder`: frame t area-averaged to ``size`` x ``size`` and upsampled back
  bilinearly (extreme low resolution, Ryoo et al.).
- :class:`BDQEncoder`: Blur, Difference, Quantisation (Kumawat and Nagahara, ECCV 2022). Blur is a
  5 x 5 Gaussian with a learnable sigma, ``G = exp(-(x^2 + y^2) / (2 sigma^2))`` normalised to sum
  1; Difference subtracts the blurred frame t - k from the blurred frame t; Quantisation is the
  differentiable staircase ``q(x) = sum_n sigmoid(hardness * (x - b_n))`` with 15 learnable bin
  centres ``b_n`` initialised at 0.5, 1.5, ..., 14.5, applied to the difference rescaled to
  [0, 15] (per clip, min-max). Its parameters train adversarially with the model
  (``TRAIN.PRIVACY_LOSS adversarial``).

``MODEL.ENCODER ifns`` keeps MSPNet's own IFNS stem, so :func:`build_input_encoder` returns None.
"""
from __future__ import annotations

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

logger = logging.getLogger(__name__)

BLUR_WINDOW = 5  # BDQ blur window side (the paper keeps it small to stabilise training)
BLUR_SIGMA_INIT = 1.0  # initial standard deviation of the BDQ blur (pixels)
MIN_BLUR_SIGMA = 0.05  # sigma is clamped here so the kernel never divides by zero
QUANT_BINS = 15  # BDQ quantiser bin centres (levels 0..15)
QUANT_HARDNESS = 5.0  # BDQ sigmoid hardness H
RANGE_EPS = 1e-6  # guards the per-clip min-max rescaling of a constant difference
PAIR_LEN = 2  # frames per time step: t - k and t
ENCODER_NAMES = ("ifns", "rgb", "downsample", "bdq")


def _check_pairs(frames: torch.Tensor) -> None:
    if frames.ndim != 6 or frames.shape[2] != PAIR_LEN or frames.shape[3] != 3:
        raise ValueError(f"input encoders expect frames [B, T, 2, 3, H, W], got {tuple(frames.shape)}")


class RGBEncoder(nn.Module):
    """Plain frames: returns frame t of each pair (no privacy protection)."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Args:
            frames: [B, T, 2, 3, H, W] normalised RGB pairs.

        Returns:
            [B, T, 3, H, W] frame t.
        """
        _check_pairs(frames)
        return frames[:, :, 1]


class DownsampleEncoder(nn.Module):
    """Extreme low resolution: frame t area-downsampled to ``size`` px and upsampled bilinearly.

    Args:
        size: side of the low-resolution image in pixels.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"downsample size must be at least 1, got {size}")
        self.size = size

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Args:
            frames: [B, T, 2, 3, H, W] normalised RGB pairs.

        Returns:
            [B, T, 3, H, W] frame t carrying only ``size`` x ``size`` worth of detail.
        """
        _check_pairs(frames)
        b, t, _, c, h, w = frames.shape
        x = frames[:, :, 1].reshape(b * t, c, h, w)
        low = F.adaptive_avg_pool2d(x, (self.size, self.size))  # [B*T, 3, size, size]
        up = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
        return up.reshape(b, t, c, h, w)


def gaussian_kernel(sigma: torch.Tensor, window: int) -> torch.Tensor:
    """A 2-D Gaussian ``exp(-(x^2 + y^2) / (2 sigma^2))`` on a centred ``window`` grid, sum 1.

    Args:
        sigma: scalar tensor (differentiable), standard deviation in pixels.
        window: odd kernel side.

    Returns:
        [window, window] kernel.
    """
    coords = torch.arange(window, device=sigma.device, dtype=sigma.dtype) - (window - 1) / 2
    g1 = torch.exp(-coords ** 2 / (2 * sigma ** 2))  # separable: G(x, y) = g(x) g(y)
    kernel = g1[:, None] * g1[None, :]
    return kernel / kernel.sum()


def soft_quantize(x: torch.Tensor, bins: torch.Tensor, hardness: float) -> torch.Tensor:
    """The differentiable staircase ``sum_n sigmoid(hardness * (x - b_n))``.

    Args:
        x: any shape, values in [0, len(bins)].
        bins: [N] bin centres.
        hardness: sigmoid slope H; large values approach the Heaviside staircase.

    Returns:
        Same shape as ``x``, values in (0, N).
    """
    steps = torch.sigmoid(hardness * (x.unsqueeze(-1) - bins))  # [..., N]
    return steps.sum(dim=-1)


class BDQEncoder(nn.Module):
    """Blur -> Difference -> Quantisation (the BDQ privacy encoder).

    Args:
        window: blur window side (odd).
        sigma: initial blur standard deviation in pixels (learnable).
        num_bins: quantiser bin centres, initialised at 0.5, 1.5, ..., num_bins - 0.5 (learnable).
        hardness: quantiser sigmoid hardness.
    """

    def __init__(self, window: int = BLUR_WINDOW, sigma: float = BLUR_SIGMA_INIT,
                 num_bins: int = QUANT_BINS, hardness: float = QUANT_HARDNESS) -> None:
        super().__init__()
        if window % 2 == 0:
            raise ValueError(f"BDQ blur window must be odd, got {window}")
        self.window = window
        self.num_bins = num_bins
        self.hardness = hardness
        self.sigma = nn.Parameter(torch.tensor(float(sigma)))
        self.bins = nn.Parameter(torch.arange(num_bins, dtype=torch.float32) + 0.5)

    def blur_kernel(self) -> torch.Tensor:
        """The current [window, window] Gaussian kernel (sums to 1)."""
        return gaussian_kernel(self.sigma.clamp(min=MIN_BLUR_SIGMA), self.window)

    def blur(self, images: torch.Tensor) -> torch.Tensor:
        """Blurs [N, C, H, W] images channel by channel (replicate borders)."""
        c = images.shape[1]
        kernel = self.blur_kernel().to(images.dtype).expand(c, 1, self.window, self.window)
        pad = self.window // 2
        padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
        return F.conv2d(padded, kernel, groups=c)

    def quantize(self, diff: torch.Tensor) -> torch.Tensor:
        """Rescales each clip's difference to [0, num_bins] and applies the soft staircase.

        Args:
            diff: [B, ...] differences.

        Returns:
            Same shape, values in (0, num_bins).
        """
        flat = diff.flatten(1)
        low = flat.min(dim=1, keepdim=True).values
        high = flat.max(dim=1, keepdim=True).values
        scaled = (flat - low) / (high - low + RANGE_EPS) * self.num_bins
        return soft_quantize(scaled, self.bins, self.hardness).view_as(diff)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Args:
            frames: [B, T, 2, 3, H, W] normalised RGB pairs (t - k, t).

        Returns:
            [B, T, 3, H, W] quantised motion difference, centred to [-1, 1].
        """
        _check_pairs(frames)
        b, t, p, c, h, w = frames.shape
        blurred = self.blur(frames.reshape(b * t * p, c, h, w)).reshape(b, t, p, c, h, w)
        diff = blurred[:, :, 1] - blurred[:, :, 0]  # [B, T, 3, H, W]
        q = self.quantize(diff)
        half = self.num_bins / 2
        return (q - half) / half


def build_input_encoder(name: str, downsample_size: int = 16, **kwargs) -> nn.Module | None:
    """Builds the input encoder ``name``.

    Args:
        name: ifns (None: MSPNet's own stem) | rgb | downsample | bdq.
        downsample_size: low-resolution side for ``downsample``.
        **kwargs: extra keyword arguments of :class:`BDQEncoder` for ``bdq``.

    Returns:
        The encoder module, or None for ``ifns``.
    """
    if name == "ifns":
        return None
    if name == "rgb":
        return RGBEncoder()
    if name == "downsample":
        return DownsampleEncoder(downsample_size)
    if name == "bdq":
        return BDQEncoder(**kwargs)
    raise ValueError(f"unknown input encoder {name!r}; choose one of {', '.join(ENCODER_NAMES)}")


def build_input_encoder_from_config(cfg) -> nn.Module | None:
    """The input encoder selected by ``MODEL.ENCODER`` (and ``MODEL.DOWNSAMPLE_SIZE``)."""
    return build_input_encoder(cfg.MODEL.ENCODER, downsample_size=cfg.MODEL.DOWNSAMPLE_SIZE)
