"""Reconstruction attack on LPS frames: deconvolution with the film's known point-spread function.

An adversary who knows the film (it is sold openly) knows its PSF (:func:`datasets.lps.lps_psf`)
and can try to undo the blur before identifying people:

- **Wiener**: ``X = conj(K) Y / (|K|^2 + nsr)`` in the Fourier domain, with K the PSF's transfer
  function (PSF zero-padded to the frame and centred at the origin) and ``nsr`` the assumed
  noise-to-signal power ratio (the regulariser).
- **Richardson-Lucy**: the multiplicative maximum-likelihood updates for Poisson noise,
  ``x <- x * (K^T (y / (K x + eps)))``, which keep the estimate non-negative.

Frames are reflect-padded by the PSF radius before the FFT so the circular convolution does not
wrap the opposite border in. Veiling glare, tint and noise are not inverted (a linear
deconvolution cannot); the attacker network sees what is left.
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from datasets.lps import PSF_TRUNCATE, LPSFilm, lps_psf

logger = logging.getLogger(__name__)

RL_EPS = 1e-6  # keeps the Richardson-Lucy ratio y / (K x) finite where K x vanishes
WIENER_NSR = 1e-2  # default noise-to-signal power ratio of the Wiener filter
RL_ITERATIONS = 30  # default Richardson-Lucy iterations
RESTORE_METHODS = ("none", "wiener", "richardson_lucy")


def film_psf(level: int, image_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The LPS PSF of ``level`` layers on the grid the simulation uses for ``image_size`` frames.

    Args:
        level: film layers (1..3).
        image_size: frame side (``min(H, W)``) the PSF widths scale with.
        device: device of the kernel.

    Returns:
        [k, k] kernel summing to 1 (k odd, at most ``2 * image_size - 1``).
    """
    widest = max(sigma for _, sigma in LPSFilm().psf_components(level, image_size))
    radius = min(math.ceil(PSF_TRUNCATE * widest), image_size - 1)
    return lps_psf(level, 2 * radius + 1, image_size, device=device)


def _transfer(psf: torch.Tensor, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """rfft2 of the PSF zero-padded to [height, width] with its centre moved to (0, 0)."""
    k = psf.shape[-1]
    kernel = torch.zeros(height, width, device=psf.device, dtype=dtype)
    kernel[:k, :k] = psf.to(dtype)
    kernel = torch.roll(kernel, shifts=(-(k // 2), -(k // 2)), dims=(0, 1))
    return torch.fft.rfft2(kernel)


def _pad(images: torch.Tensor, psf: torch.Tensor) -> tuple[torch.Tensor, int]:
    _, _, h, w = images.shape
    pad = min(psf.shape[-1] // 2, h - 1, w - 1)
    return F.pad(images, (pad, pad, pad, pad), mode="reflect"), pad


def _check(images: torch.Tensor, psf: torch.Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got {tuple(images.shape)}")
    if psf.ndim != 2 or psf.shape[0] != psf.shape[1] or psf.shape[0] % 2 == 0:
        raise ValueError(f"expected an odd square PSF [k, k], got {tuple(psf.shape)}")


def fft_convolve(images: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """Convolves [N, C, H, W] images with a centred odd [k, k] PSF (reflect borders)."""
    _check(images, psf)
    _, _, h, w = images.shape
    padded, pad = _pad(images, psf)
    ph, pw = padded.shape[-2:]
    spectrum = torch.fft.rfft2(padded) * _transfer(psf, ph, pw, images.dtype)
    return torch.fft.irfft2(spectrum, s=(ph, pw))[..., pad:pad + h, pad:pad + w]


def wiener_deconvolve(images: torch.Tensor, psf: torch.Tensor, nsr: float = WIENER_NSR) -> torch.Tensor:
    """Wiener deconvolution.

    Args:
        images: [N, C, H, W] blurred images, float.
        psf: [k, k] point-spread function (odd side, sums to 1).
        nsr: noise-to-signal power ratio (> 0): larger = smoother, less ringing.

    Returns:
        [N, C, H, W] restored images (not clamped).
    """
    _check(images, psf)
    if nsr <= 0:
        raise ValueError(f"Wiener nsr must be positive, got {nsr}")
    _, _, h, w = images.shape
    padded, pad = _pad(images, psf)
    ph, pw = padded.shape[-2:]
    k = _transfer(psf, ph, pw, images.dtype)
    inverse = k.conj() / (k.abs() ** 2 + nsr)
    restored = torch.fft.irfft2(torch.fft.rfft2(padded) * inverse, s=(ph, pw))
    return restored[..., pad:pad + h, pad:pad + w]


def richardson_lucy(images: torch.Tensor, psf: torch.Tensor, iterations: int = RL_ITERATIONS,
                    eps: float = RL_EPS) -> torch.Tensor:
    """Richardson-Lucy deconvolution (non-negative images).

    Args:
        images: [N, C, H, W] blurred images, float, non-negative (negatives are clamped to 0).
        psf: [k, k] point-spread function (odd side, sums to 1).
        iterations: multiplicative updates.
        eps: floor of the denominator ``K x``.

    Returns:
        [N, C, H, W] restored images, non-negative.
    """
    _check(images, psf)
    if iterations < 0:
        raise ValueError(f"Richardson-Lucy iterations must not be negative, got {iterations}")
    observed = images.clamp(min=0)
    flipped = torch.flip(psf, dims=(0, 1))
    estimate = observed.clone()
    for _ in range(iterations):
        ratio = observed / (fft_convolve(estimate, psf) + eps)
        estimate = estimate * fft_convolve(ratio, flipped).clamp(min=0)
    return estimate


def restore_frames(frames: torch.Tensor, method: str, level: int, nsr: float = WIENER_NSR,
                   iterations: int = RL_ITERATIONS) -> torch.Tensor:
    """Restores LPS frames with the film's PSF.

    Args:
        frames: [N, 3, H, W] float in [0, 1].
        method: none | wiener | richardson_lucy.
        level: film layers the frames went through (0 returns them unchanged).
        nsr: Wiener noise-to-signal ratio.
        iterations: Richardson-Lucy iterations.

    Returns:
        [N, 3, H, W] restored frames clamped to [0, 1].
    """
    if method not in RESTORE_METHODS:
        raise ValueError(f"unknown restore method {method!r}; choose one of {', '.join(RESTORE_METHODS)}")
    if method == "none" or level == 0:
        return frames
    psf = film_psf(level, min(frames.shape[-2:]), device=frames.device)
    if method == "wiener":
        out = wiener_deconvolve(frames, psf, nsr)
    else:
        out = richardson_lucy(frames, psf, iterations)
    return out.clamp(0, 1)
