"""Full-reference image quality: PSNR and SSIM (Wang, Bovik, Sheikh and Simoncelli, IEEE TIP 2004).

SSIM follows the paper's reference setting, which is also scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=R)``: local statistics under an 11-tap Gaussian window (sigma 1.5, normalised to sum 1),
``C1 = (0.01 R)^2``, ``C2 = (0.03 R)^2``, population (biased) variances, and the mean of the SSIM
map over the positions where the window lies wholly inside the image (scikit-image filters with
reflected borders and then crops the 5-pixel border, which leaves exactly these positions). A
colour image's SSIM is the mean over its channels (scikit-image's ``channel_axis``).

Both functions score every image of a batch separately; a set's figure is the mean over its
images (the convention of restoration papers).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11  # taps of the Gaussian window (2 * int(3.5 * sigma + 0.5) + 1 for sigma 1.5)
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two image batches [N, C, H, W] of one shape, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio of every image pair, ``10 log10(R^2 / MSE)``.

    Args:
        x: [N, C, H, W] images (any real dtype; computed in float64).
        y: [N, C, H, W] reference images.
        data_range: R, the span of the pixel scale (1 for [0, 1], 255 for uint8 values).

    Returns:
        float64 [N] decibels (``inf`` for identical images).
    """
    _check_pair(x, y)
    mse = (x.double() - y.double()).square().flatten(1).mean(1)
    return 10 * torch.log10(data_range ** 2 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA,
                    dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
    """The 1-D Gaussian window ``[size]`` (odd size, centred, summing to 1)."""
    if size % 2 == 0 or size < 1:
        raise ValueError(f"the SSIM window needs an odd positive size, got {size}")
    offsets = torch.arange(size, dtype=dtype, device=device) - size // 2
    window = torch.exp(-offsets.square() / (2 * sigma ** 2))
    return window / window.sum()


def _local_mean(images: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of [N, C, H, W] with ``window`` along H and W, per channel."""
    c = images.shape[1]
    k = window.numel()
    rows = window.reshape(1, 1, k, 1).expand(c, 1, k, 1)
    cols = window.reshape(1, 1, 1, k).expand(c, 1, 1, k)
    return F.conv2d(F.conv2d(images, rows, groups=c), cols, groups=c)


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window_size: int = SSIM_WINDOW,
             sigma: float = SSIM_SIGMA, k1: float = SSIM_K1, k2: float = SSIM_K2) -> torch.Tensor:
    """The local SSIM index at every position where the window fits inside the images.

    Args:
        x: [N, C, H, W] images, float (the dtype of the computation; H, W >= ``window_size``).
        y: [N, C, H, W] reference images, same dtype.
        data_range: R, the span of the pixel scale.
        window_size: taps of the Gaussian window (odd).
        sigma: its standard deviation in pixels.
        k1: luminance stabiliser, ``C1 = (k1 R)^2``.
        k2: contrast stabiliser, ``C2 = (k2 R)^2``.

    Returns:
        [N, C, H - window_size + 1, W - window_size + 1] SSIM values (differentiable).
    """
    _check_pair(x, y)
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"SSIM needs images of at least {window_size} px, got {tuple(x.shape[-2:])}")
    window = gaussian_window(window_size, sigma, dtype=x.dtype, device=x.device)
    mu_x, mu_y = _local_mean(x, window), _local_mean(y, window)
    var_x = _local_mean(x * x, window) - mu_x.square()
    var_y = _local_mean(y * y, window) - mu_y.square()
    cov = _local_mean(x * y, window) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of every image pair (the reference setting of the module docstring).

    Args:
        x: [N, C, H, W] images (computed in float64).
        y: [N, C, H, W] reference images.
        data_range: R, the span of the pixel scale.

    Returns:
        float64 [N] mean SSIM (1 for identical images).
    """
    return ssim_map(x.double(), y.double(), data_range).flatten(1).mean(1)

