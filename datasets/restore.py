"""Reconstruction attack on LPS frames: deconvolution with the film's known point-spread function,
or a restoration network trained on pairs of clean and sealed frames.

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

- **learned**: a network of :mod:`models.restorers` trained by ``tools/train_restorer.py`` on
  (clean, sealed) pairs of other videos, which can learn to undo glare, tint and noise too. It is
  named by its checkpoint path and loaded lazily, once per process (:func:`cached_restorer`), so a
  dataset holding the path stays picklable and every data-loader worker loads its own copy.
"""
from __future__ import annotations

import functools
import logging
import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from datasets.lps import PSF_TRUNCATE, LPSFilm, lps_psf
from models.convert import load_checkpoint_file
from datasets.optics import admm_tv, device_psf
from models.restorers import load_restorer
from utils.errors import UserError

logger = logging.getLogger(__name__)

RL_EPS = 1e-6  # keeps the Richardson-Lucy ratio y / (K x) finite where K x vanishes
WIENER_NSR = 1e-2  # default noise-to-signal power ratio of the Wiener filter
RL_ITERATIONS = 30  # default Richardson-Lucy iterations
RESTORE_METHODS = ("none", "wiener", "richardson_lucy", "admm_tv", "learned")
FILM_METHODS = ("wiener", "richardson_lucy")  # the film's known-PSF deconvolutions
RESTORER_CACHE = 4  # restorer checkpoints kept loaded per process


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


@functools.lru_cache(maxsize=RESTORER_CACHE)
def cached_restorer(path: str) -> nn.Module:
    """The restorer of checkpoint ``path`` in eval mode, read once per process (on the CPU).

    Raises:
        CheckpointError: see :func:`models.restorers.load_restorer`.
    """
    model, _ = load_restorer(path)
    return model.requires_grad_(False)


def check_learned_restorer(path: str, level: int, names: Iterable[str]) -> None:
    """Checks that the restorer of ``path`` fits an attack on ``names`` at film ``level``.

    Args:
        path: a checkpoint of tools/train_restorer.py.
        level: the film level of the attacked frames.
        names: the attacked videos.

    Raises:
        UserError: not a restorer, trained at other levels, or trained on some of ``names`` (the
            victims' clean frames are not the adversary's).
    """
    state = load_checkpoint_file(path, allow_pickle=False, mmap=True)
    cached_restorer(path)  # fails here, in the main process, on a file that is no restorer
    if level not in state["levels"]:
        raise UserError(f"the restorer {path} was trained at film levels {state['levels']}, not at {level}; "
                        "pass --level or train one at that level (tools/train_restorer.py --levels)")
    seen = sorted(set(state["train_names"]) & set(names))
    if seen:
        raise UserError(f"the restorer {path} was trained on {len(seen)} of the attacked videos (e.g. {seen[0]}); "
                        "attack only its held-out videos (privacy_attack.py --videos val, with the config it was "
                        "trained with)")


def restore_frames(frames: torch.Tensor, method: str, level: int, nsr: float = WIENER_NSR,
                   iterations: int = RL_ITERATIONS, restorer: str = "", camera: str = "film") -> torch.Tensor:
    """Restores the frames of a privacy camera with its known PSF or a trained restorer.

    Args:
        frames: [N, 3, H, W] float in [0, 1].
        method: none | wiener | richardson_lucy (film) | admm_tv (lensless, coded aperture:
            :func:`datasets.optics.admm_tv`) | learned.
        level: film layers (other cameras: privacy level) the frames went through (0 returns
            them unchanged).
        nsr: Wiener noise-to-signal ratio.
        iterations: Richardson-Lucy iterations.
        restorer: checkpoint of the learned restorer (method learned), run on the frames' device.
        camera: the camera that recorded them (``LPS.DEVICE``).

    Returns:
        [N, 3, H, W] restored frames clamped to [0, 1].
    """
    if method not in RESTORE_METHODS:
        raise ValueError(f"unknown restore method {method!r}; choose one of {', '.join(RESTORE_METHODS)}")
    if method == "none" or level == 0:
        return frames
    if method == "learned":
        if not restorer:
            raise ValueError("the learned restoration needs a restorer checkpoint")
        model = cached_restorer(restorer).to(frames.device)
        with torch.no_grad():
            return model(frames.float()).clamp(0, 1).to(frames.dtype)
    if (method == "admm_tv") == (camera == "film"):
        raise ValueError(f"restore method {method} does not invert the {camera} camera: use "
                         f"{'wiener or richardson_lucy' if camera == 'film' else 'admm_tv'}")
    if method == "admm_tv":
        return admm_tv(frames, device_psf(camera, level, *frames.shape[-2:]).to(frames.device))
    psf = film_psf(level, min(frames.shape[-2:]), device=frames.device)
    if method == "wiener":
        out = wiener_deconvolve(frames, psf, nsr)
    else:
        out = richardson_lucy(frames, psf, iterations)
    return out.clamp(0, 1)
