"""BDQ (Kumawat and Nagahara, ECCV 2022): Blur, Difference, Quantisation as an input encoder.

Blur is a 5 x 5 Gaussian with a learnable sigma, ``G = exp(-(x^2 + y^2) / (2 sigma^2))``
normalised to sum 1; Difference subtracts the blurred frame t - k from the blurred frame t
(k = ``DATA.FD_STRIDE``); Quantisation is the differentiable staircase
``q(x) = sum_n sigmoid(hardness * (x - b_n))`` with 15 learnable bin centres ``b_n`` initialised at
0.5, 1.5, ..., 14.5, applied to the difference rescaled to [0, 15] (per clip, min-max). Its
parameters train adversarially with the model (``TRAIN.PRIVACY_LOSS adversarial``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.encoders import FrameRequest, check_frames, clip_normalize

BLUR_WINDOW = 5  # BDQ blur window side (the paper keeps it small to stabilise training)
BLUR_SIGMA_INIT = 1.0  # initial standard deviation of the BDQ blur (pixels)
MIN_BLUR_SIGMA = 0.05  # sigma is clamped here so the kernel never divides by zero
QUANT_BINS = 15  # BDQ quantiser bin centres (levels 0..15)
QUANT_HARDNESS = 5.0  # BDQ sigmoid hardness H
RANGE_EPS = 1e-6  # guards the per-clip min-max rescaling of a constant difference


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
        stride: the difference stride k: the encoder reads frames t - k and t.
        window: blur window side (odd).
        sigma: initial blur standard deviation in pixels (learnable).
        num_bins: quantiser bin centres, initialised at 0.5, 1.5, ..., num_bins - 0.5 (learnable).
        hardness: quantiser sigmoid hardness.
    """

    def __init__(self, stride: int, window: int = BLUR_WINDOW, sigma: float = BLUR_SIGMA_INIT,
                 num_bins: int = QUANT_BINS, hardness: float = QUANT_HARDNESS) -> None:
        super().__init__()
        if window % 2 == 0:
            raise ValueError(f"BDQ blur window must be odd, got {window}")
        self.request = FrameRequest(offsets=(-stride, 0), gray=False)
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

    def encode_pairs(self, pairs: torch.Tensor) -> torch.Tensor:
        """Args:
            pairs: float ``[B, T, 2, 3, H, W]`` CLIP-normalised RGB pairs (t - k, t).

        Returns:
            ``[B, T, 3, H, W]`` quantised motion difference, centred to [-1, 1].
        """
        b, t, p, c, h, w = pairs.shape
        blurred = self.blur(pairs.reshape(b * t * p, c, h, w)).reshape(b, t, p, c, h, w)
        diff = blurred[:, :, 1] - blurred[:, :, 0]  # [B, T, 3, H, W]
        q = self.quantize(diff)
        half = self.num_bins / 2
        return (q - half) / half

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Args:
            frames: uint8 ``[B, T, 2, 3, H, W]`` RGB frames t - k and t.

        Returns:
            float32 ``[B, T, 3, H, W]`` (:meth:`encode_pairs` of the normalised frames).
        """
        check_frames(frames, self.request)
        return self.encode_pairs(clip_normalize(frames))
