"""Other physical privacy cameras beside the film (``LPS.DEVICE``), and the adversary's known-PSF
inversion of them.

- ``film``: Lens Privacy Sealing, :func:`datasets.lps.simulate_lps` (``LPS.LEVEL`` layers).
- ``lensless``: a DiffuserCam-like camera (Antipa et al., Optica 2018): no lens, a thin random
  diffuser in front of the sensor. Its point-spread function is the diffuser's caustic: rays of a
  point source cross the diffuser's aperture, are bent by the gradient of its random height
  profile, and pile up on the sensor in bright curves. The measurement is the scene convolved
  with that PSF (every scene point lights a large part of the sensor), plus sensor noise.
- ``coded_aperture``: a random binary mask of square cells in place of the lens, half of them open
  (transmittance 0.5); by geometric optics its PSF is the mask pattern itself, so the measurement
  is the scene convolved with the mask (the auto-exposure gain of 2 amplifies the noise).

``LPS.LEVEL`` (1..3) is the privacy strength of every device: the film's layer count, and for the
two others the PSF's extent, :data:`SUPPORT_BY_LEVEL` of the frame side. Convolutions are circular
(the scene repeats beyond the frame), the model under which :func:`admm_tv` inverts exactly; the
sensor is that of the film simulation (:func:`datasets.lps.expose`). Each device has ONE fixed
diffuser or mask, drawn from :data:`OPTICS_SEED` (a camera is built once); only the sensor noise
differs per sample. The parameters below are fixed before any method is evaluated.

The adversary who knows the PSF (it can be calibrated once from the device) inverts the
measurement with ADMM and total-variation regularisation (Antipa et al.'s reconstruction):
``min_x 1/2 |k * x - b|^2 + tau |grad x|_1`` subject to ``x >= 0``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from datasets.lps import MAX_LEVEL, LPSFilm, expose, simulate_lps
from utils.misc import PIXEL_MAX

CAMERAS = ("film", "lensless", "coded_aperture")  # LPS.DEVICE choices
SUPPORT_BY_LEVEL = {1: 0.125, 2: 0.25, 3: 0.5}  # PSF extent (fraction of the frame side) per level
OPTICS_SEED = 20240  # the one diffuser / mask of each simulated device


@dataclass(frozen=True)
class Lensless:
    """A DiffuserCam-like lensless camera.

    Args:
        rays_per_pixel: rays traced per sensor pixel of the aperture (per axis).
        roughness_cells: correlation length of the diffuser's height profile, as a fraction of the
            aperture (smaller = finer caustics).
        deflection: largest ray deflection, as a fraction of the aperture (how far the caustic
            spreads beyond a plain shadow of the aperture).
        transmittance: light the diffuser lets through (the sensor gain is its inverse).
        photons_at_white: photo-electrons of a white pixel (shot noise), as the film's sensor.
        read_sigma: read noise, as the film's sensor.
    """

    rays_per_pixel: int = 4
    roughness_cells: float = 0.15
    deflection: float = 0.25
    transmittance: float = 0.9
    photons_at_white: float = 4000.0
    read_sigma: float = 0.003

    def psf(self, level: int, height: int, width: int) -> torch.Tensor:
        """The caustic PSF [H, W] of ``level`` on an H x W sensor (sums to 1, centred at (0, 0)
        for circular convolution)."""
        support = max(2, round(SUPPORT_BY_LEVEL[level] * min(height, width)))
        rng = np.random.default_rng([OPTICS_SEED, level, height, width])
        n = support * self.rays_per_pixel
        # the diffuser's height profile: white noise smoothed to the roughness length (FFT filter)
        noise = rng.standard_normal((n, n))
        freq = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2
        corr = self.roughness_cells * n
        profile = np.real(np.fft.ifft2(np.fft.fft2(noise) * np.exp(-2 * (math.pi * corr) ** 2 * freq)))
        gy, gx = np.gradient(profile)
        scale = self.deflection * support / max(np.abs(np.concatenate([gx, gy])).max(), 1e-12)
        # rays start on the aperture's grid (a disc centred at 0), bent by the height gradient
        coords = (np.arange(n) + 0.5) / self.rays_per_pixel - support / 2
        y, x = np.meshgrid(coords, coords, indexing="ij")
        inside = x ** 2 + y ** 2 <= (support / 2) ** 2
        land_y = np.floor(y + scale * gy)[inside].astype(np.int64) % height
        land_x = np.floor(x + scale * gx)[inside].astype(np.int64) % width
        counts = np.bincount(land_y * width + land_x, minlength=height * width).reshape(height, width)
        psf = torch.from_numpy(counts.astype(np.float64))
        return psf / psf.sum()

    def gain(self) -> float:
        """Auto-exposure gain."""
        return 1.0 / self.transmittance


@dataclass(frozen=True)
class CodedAperture:
    """A coded-aperture camera: a random binary mask of ``cells`` x ``cells`` square cells.

    Args:
        cells: mask cells per side.
        open_fraction: share of open cells (the transmittance), drawn exactly.
        photons_at_white: photo-electrons of a white pixel (shot noise), as the film's sensor.
        read_sigma: read noise, as the film's sensor.
    """

    cells: int = 8
    open_fraction: float = 0.5
    photons_at_white: float = 4000.0
    read_sigma: float = 0.003

    def mask(self, level: int) -> np.ndarray:
        """The binary mask [cells, cells] (exactly ``open_fraction`` of the cells open)."""
        rng = np.random.default_rng([OPTICS_SEED, level, self.cells])
        flat = np.zeros(self.cells * self.cells)
        flat[:round(self.open_fraction * flat.size)] = 1
        return rng.permutation(flat).reshape(self.cells, self.cells)

    def psf(self, level: int, height: int, width: int) -> torch.Tensor:
        """The mask projected on the sensor [H, W] (its side :data:`SUPPORT_BY_LEVEL` of the frame
        side, nearest cells), centred at (0, 0), summing to 1."""
        side = max(self.cells, round(SUPPORT_BY_LEVEL[level] * min(height, width)))
        cell_of = (np.arange(side) * self.cells) // side
        pattern = self.mask(level)[cell_of[:, None], cell_of[None, :]]  # [side, side]
        psf = np.zeros((height, width))
        psf[:side, :side] = pattern
        psf = np.roll(psf, (-(side // 2), -(side // 2)), axis=(0, 1))
        return torch.from_numpy(psf / psf.sum())

    def gain(self) -> float:
        """Auto-exposure gain (1 / transmittance)."""
        return 1.0 / self.open_fraction


def device_optics(device: str) -> Lensless | CodedAperture | LPSFilm:
    """The fixed optics of ``device`` (:data:`CAMERAS`)."""
    if device not in CAMERAS:
        raise ValueError(f"LPS.DEVICE {device!r} is not one of {CAMERAS}")
    return {"film": LPSFilm, "lensless": Lensless, "coded_aperture": CodedAperture}[device]()


def device_psf(device: str, level: int, height: int, width: int) -> torch.Tensor:
    """The known [H, W] PSF of a lensless or coded-aperture ``device`` at ``level`` (float64,
    centred at (0, 0))."""
    if device == "film":
        raise ValueError("the film's PSF is datasets.lps.lps_psf (a centred kernel)")
    return device_optics(device).psf(level, height, width)


def circular_convolve(images: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """[M, C, H, W] images circularly convolved with an [H, W] PSF centred at (0, 0)."""
    transfer = torch.fft.rfft2(psf.to(images.dtype))
    return torch.fft.irfft2(torch.fft.rfft2(images) * transfer, s=images.shape[-2:])


def simulate_device(frames: torch.Tensor, device: str, level: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """What ``device`` records of RGB frames at privacy ``level``.

    Args:
        frames: [..., 3, H, W] RGB, float in [0, 1] or uint8.
        device: film | lensless | coded_aperture.
        level: 0 (frames unchanged) .. 3.
        generator: source of the sensor noise (frames draw in order).

    Returns:
        The measurement, same shape, dtype and device (uint8 rounded and clamped; float clamped).
    """
    if device == "film" or level == 0:
        return simulate_lps(frames, level, generator)
    if not 1 <= level <= MAX_LEVEL:
        raise ValueError(f"privacy level must be 0 (off) .. {MAX_LEVEL}, got {level}")
    optics = device_optics(device)
    lead, (c, h, w) = frames.shape[:-3], frames.shape[-3:]
    is_uint8 = frames.dtype == torch.uint8
    x = frames.reshape(-1, c, h, w).float()
    if is_uint8:
        x = x / PIXEL_MAX
    x = circular_convolve(x, optics.psf(level, h, w).to(x.device))
    x = expose(x, optics.gain(), optics.photons_at_white, optics.read_sigma, generator)
    x = x.clamp(0, 1).reshape(*lead, c, h, w)
    if is_uint8:
        return (x * PIXEL_MAX).round().to(torch.uint8)
    return x.to(frames.dtype)


def _difference_transfer(height: int, width: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """rfft2 of the periodic forward differences along x and along y."""
    dx = torch.zeros(height, width, dtype=dtype)
    dx[0, 0], dx[0, -1] = -1.0, 1.0  # (D_x u)(i, j) = u(i, j + 1) - u(i, j) as a convolution
    dy = torch.zeros(height, width, dtype=dtype)
    dy[0, 0], dy[-1, 0] = -1.0, 1.0
    return torch.fft.rfft2(dx), torch.fft.rfft2(dy)


def _grad(x: torch.Tensor) -> torch.Tensor:
    """Periodic forward differences: [..., H, W] -> [2, ..., H, W] (x, then y)."""
    return torch.stack([torch.roll(x, -1, -1) - x, torch.roll(x, -1, -2) - x])


def _grad_adjoint(u: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`_grad`: [2, ..., H, W] -> [..., H, W]."""
    return (torch.roll(u[0], 1, -1) - u[0]) + (torch.roll(u[1], 1, -2) - u[1])


def admm_tv(measurement: torch.Tensor, psf: torch.Tensor, *, tau: float = 2e-3, mu_tv: float = 5e-2,
            mu_pos: float = 5e-2, iterations: int = 100) -> torch.Tensor:
    """Known-PSF reconstruction: ``min_x 1/2 |k * x - b|^2 + tau |grad x|_1``, ``x >= 0``, by ADMM
    with the splits ``u = grad x`` (soft-thresholded) and ``v = x`` (clamped at 0); the x-update
    is exact in the Fourier domain (circular convolution).

    Args:
        measurement: [M, C, H, W] float measurements b (in [0, 1]).
        psf: [H, W] PSF centred at (0, 0).
        tau: TV weight.
        mu_tv: ADMM penalty of the gradient split.
        mu_pos: ADMM penalty of the non-negativity split.
        iterations: ADMM iterations.

    Returns:
        [M, C, H, W] reconstruction, clamped to [0, 1].
    """
    b = measurement.double()
    h, w = b.shape[-2:]
    transfer = torch.fft.rfft2(psf.to(torch.float64).to(b.device))
    tx, ty = (t.to(b.device) for t in _difference_transfer(h, w, torch.float64))
    denominator = transfer.abs() ** 2 + mu_tv * (tx.abs() ** 2 + ty.abs() ** 2) + mu_pos
    kt_b = torch.fft.rfft2(b) * transfer.conj()
    x = b.clone()
    u, eta_u = _grad(x), torch.zeros_like(_grad(x))
    v, eta_v = x.clone(), torch.zeros_like(x)
    for _ in range(iterations):
        rhs = kt_b + torch.fft.rfft2(mu_tv * _grad_adjoint(u - eta_u / mu_tv) + mu_pos * (v - eta_v / mu_pos))
        x = torch.fft.irfft2(rhs / denominator, s=(h, w))
        grad = _grad(x)
        shrink = grad + eta_u / mu_tv
        u = shrink.sign() * (shrink.abs() - tau / mu_tv).clamp(min=0)
        v = (x + eta_v / mu_pos).clamp(min=0)
        eta_u = eta_u + mu_tv * (grad - u)
        eta_v = eta_v + mu_pos * (x - v)
    return x.clamp(0, 1).to(measurement.dtype)
