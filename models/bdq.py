"""BDQ (Kumawat and Nagahara, ECCV 2022): Blur, Difference, Quantisation as an input encoder.

Following the paper where it speaks and the official code (suakaw/BDQ_PrivacyAR, ``degradNet.py``)
where it is silent:

- **Blur**: a 5 x 5 Gaussian ``G = exp(-(x^2 + y^2) / (2 sigma^2))`` normalised to sum 1, zero
  padding (the code's ``Conv3d`` padding); sigma is learned (the paper) from 3 (the code's start;
  the code in fact freezes its kernel).
- **Difference**: consecutive sampled frames, blurred frame t minus blurred frame t - 1 (paper and
  code): T sampled frames give T - 1 differences (the code drops the first).
- **Quantisation**: the difference is rescaled to [0, 15] by its min and max
  (``(x - min) / (max - min + 1e-4) * 15``, the code's epsilon), through the differentiable
  staircase ``q(x) = sum_n sigmoid(hardness * (x - b_n))`` with 15 learnable bins initialised at
  0.5, 1.5, ..., 14.5, hardness 5; before every forward the bins are clamped to [0, 15] and sorted
  (the code); the output is mapped back to difference units, ``q * s + min`` with
  ``s = max((max - min) / 15, 1e-4)`` (the code).

One deliberate deviation (docs/privacy.md): min and max are taken per clip, not over the whole
batch as in the code, so a clip's encoding does not depend on the other clips of its batch (a
property the tests check). Its parameters train adversarially with the model
(``TRAIN.PRIVACY_LOSS adversarial``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.encoders import FrameRequest, check_frames, clip_normalize

BLUR_WINDOW = 5  # BDQ blur window side (paper and code)
BLUR_SIGMA_INIT = 3.0  # initial standard deviation of the BDQ blur, pixels (the official code's)
MIN_BLUR_SIGMA = 0.05  # sigma is clamped here so the kernel never divides by zero
QUANT_BINS = 15  # BDQ quantiser bin centres (levels 0..15, 4 bits)
QUANT_HARDNESS = 5.0  # BDQ sigmoid hardness H (the code's sig_scale)
RANGE_EPS = 1e-4  # the official code's epsilon of the min-max rescale, and floor of its step size


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
    """Blur -> Difference -> Quantisation (the BDQ privacy encoder), see the module docstring.

    Args:
        window: blur window side (odd).
        sigma: initial blur standard deviation in pixels (learnable).
        num_bins: quantiser bin centres, initialised at 0.5, 1.5, ..., num_bins - 0.5 (learnable).
        hardness: quantiser sigmoid hardness.
    """

    request = FrameRequest(offsets=(0,), gray=False, consecutive=True)

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
        """Blurs [N, C, H, W] images channel by channel (zero padding, the same size out)."""
        c = images.shape[1]
        kernel = self.blur_kernel().to(images.dtype).expand(c, 1, self.window, self.window)
        return F.conv2d(images, kernel, padding=self.window // 2, groups=c)

    def project_bins(self) -> None:
        """Clamps the bins to [0, num_bins] and sorts them, in place (the official code does so
        before every forward: a projection after each optimizer step)."""
        with torch.no_grad():
            self.bins.copy_(self.bins.clamp(0, self.num_bins).sort().values)

    def quantize(self, diff: torch.Tensor) -> torch.Tensor:
        """Quantises each clip's difference in its own [min, max] (see the module docstring).

        Args:
            diff: [B, ...] differences.

        Returns:
            Same shape, in difference units: ``q * s + min``, within [min, min + 15 s].
        """
        flat = diff.flatten(1)
        low = flat.min(dim=1, keepdim=True).values
        span = flat.max(dim=1, keepdim=True).values - low
        scaled = (flat - low) / (span + RANGE_EPS) * self.num_bins
        step = (span / self.num_bins).clamp(min=RANGE_EPS)
        return (soft_quantize(scaled, self.bins, self.hardness) * step + low).view_as(diff)

    def encode_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """Args:
            clips: float ``[B, T, 3, H, W]`` CLIP-normalised RGB frames, T >= 2.

        Returns:
            ``[B, T - 1, 3, H, W]``: the quantised difference of each pair of consecutive frames.
        """
        b, t, c, h, w = clips.shape
        if t < 2:
            raise ValueError(f"BDQ differences consecutive frames and needs at least 2, got {t}")
        self.project_bins()
        blurred = self.blur(clips.reshape(b * t, c, h, w)).reshape(b, t, c, h, w)
        return self.quantize(blurred[:, 1:] - blurred[:, :-1])  # [B, T - 1, 3, H, W]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Args:
            frames: uint8 ``[B, T, 1, 3, H, W]`` RGB sampled frames.

        Returns:
            float32 ``[B, T - 1, 3, H, W]`` (:meth:`encode_clips` of the normalised frames).
        """
        check_frames(frames, self.request)
        return self.encode_clips(clip_normalize(frames[:, :, 0]))
