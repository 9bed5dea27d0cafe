"""Simulation of Lens Privacy Sealing (LPS): laminating film stuck over a camera lens.

Physics modelled (one film layer, then ``level`` stacked layers):

1. **Forward scattering.** A laminating film (PET carrier + EVA adhesive, rough surfaces) lets a
   fraction ``1 - s`` of the light through nearly undeviated and scatters a fraction ``s`` into a
   wide forward lobe. Its point-spread function (PSF) is therefore a sharp *core* (a narrow
   Gaussian of width ``core_sigma``, a near delta) plus a wide *halo* (a Gaussian of width
   ``halo_sigma``)::

       PSF_1 = (1 - s) * G(core_sigma) + s * G(halo_sigma)

   Light crossing ``n`` layers is convolved ``n`` times. Because Gaussians convolve into Gaussians
   (variances add), the n-fold convolution is exactly a binomial mixture::

       PSF_n = sum_k C(n, k) (1 - s)^(n - k) s^k  G(sqrt((n - k) core_sigma^2 + k halo_sigma^2))

   so the undeviated share falls as ``(1 - s)^n`` and the halo widens as ``sqrt(k)``. Widths are
   fractions of the frame side (``min(H, W)``), so a 32 px and a 224 px frame see the same blur
   relative to the scene.
2. **Veiling glare.** Very wide-angle scatter (and inter-reflections between film and lens) spreads
   light over the whole frame: a fraction ``g_n = 1 - (1 - g)^n`` of the image is replaced by the
   frame's mean colour, which lifts the blacks and lowers contrast.
3. **Colour loss.** The film absorbs slightly more blue than red (a warm tint ``tint^n`` per
   channel) and the mixing of light by scattering desaturates colours: chroma is scaled by
   ``(1 - d)^n`` around the Rec.601 luminance.
4. **Sensor noise.** The film transmits ``t^n`` of the light; auto-exposure restores the brightness
   with a gain ``1 / t^n``, which amplifies the noise. Shot noise (variance proportional to the
   signal, ``x / photons_at_white``) and read noise (``read_sigma``) are drawn as Gaussians from a
   ``torch.Generator`` (reproducible) before the gain.

The parameters are fixed here (:class:`LPSFilm` defaults) once, for the synthetic benchmark and the
``tools/lps.py`` CLI alike; they are not tuned to favour any method.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from utils.misc import PIXEL_MAX

logger = logging.getLogger(__name__)

MAX_LEVEL = 3  # at most three stacked film layers (PriMo's adjustable privacy levels)
PSF_TRUNCATE = 3.5  # the simulation kernel reaches this many widest-component sigmas
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # Rec.601 luminance of RGB


@dataclass(frozen=True)
class LPSFilm:
    """Physical parameters of ONE laminating-film layer; stacked layers compound them.

    Args:
        core_sigma: width of the undeviated core, as a fraction of the frame side (a near delta).
        halo_sigma: width of the forward-scattering halo, as a fraction of the frame side.
        scatter: fraction of the light one layer scatters into the halo.
        glare: fraction of the image one layer replaces by the frame's mean colour (veiling glare).
        desaturation: fraction of chroma one layer removes.
        tint: per-channel (R, G, B) transmission ratio of one layer (warm: blue absorbed most).
        transmittance: fraction of the light one layer lets through (compensated by auto-exposure).
        photons_at_white: photo-electrons a white pixel collects without film (shot noise).
        read_sigma: sensor read noise, standard deviation in [0, 1] intensity units.
    """

    core_sigma: float = 0.002
    halo_sigma: float = 0.04
    scatter: float = 0.45
    glare: float = 0.12
    desaturation: float = 0.15
    tint: tuple[float, float, float] = (1.0, 0.985, 0.94)
    transmittance: float = 0.88
    photons_at_white: float = 4000.0
    read_sigma: float = 0.003

    def psf_components(self, level: int, image_size: int) -> list[tuple[float, float]]:
        """The Gaussian mixture ``[(weight, sigma_px), ...]`` of ``level`` stacked layers.

        Args:
            level: number of film layers (>= 1).
            image_size: frame side in pixels the widths are relative to.
        """
        core_px = self.core_sigma * image_size
        halo_px = self.halo_sigma * image_size
        return [(math.comb(level, k) * (1 - self.scatter) ** (level - k) * self.scatter ** k,
                 math.sqrt((level - k) * core_px ** 2 + k * halo_px ** 2))
                for k in range(level + 1)]

    def glare_at(self, level: int) -> float:
        """Veiling-glare fraction after ``level`` layers."""
        return 1.0 - (1.0 - self.glare) ** level

    def chroma_at(self, level: int) -> float:
        """Chroma kept after ``level`` layers."""
        return (1.0 - self.desaturation) ** level

    def gain_at(self, level: int) -> float:
        """Auto-exposure gain that undoes the transmittance of ``level`` layers."""
        return self.transmittance ** (-level)


def _check_level(level: int) -> None:
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"LPS level must be 0 (off) .. {MAX_LEVEL}, got {level}")


def lps_psf(level: int, size: int, image_size: int, device: torch.device | str | None = None,
            dtype: torch.dtype = torch.float32, film: LPSFilm | None = None) -> torch.Tensor:
    """The point-spread function of ``level`` film layers, sampled on a ``size`` x ``size`` grid.

    Args:
        level: film layers (0 gives a centred delta).
        size: kernel side in pixels (odd sizes are centred exactly).
        image_size: side of the frames it applies to (PSF widths scale with it).
        device: device of the result.
        dtype: dtype of the result.
        film: film parameters (default :class:`LPSFilm`).

    Returns:
        [size, size] kernel, symmetric, summing to 1.
    """
    _check_level(level)
    film = film or LPSFilm()
    coords = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    r2 = coords[:, None] ** 2 + coords[None, :] ** 2  # [size, size]
    if level == 0:
        psf = (r2 == r2.min()).to(torch.float64)
    else:
        psf = torch.zeros_like(r2)
        for weight, sigma in film.psf_components(level, image_size):
            component = torch.exp(-r2 / (2 * sigma ** 2)) if sigma > 0 else (r2 == r2.min()).double()
            psf += weight * component / component.sum()
    return (psf / psf.sum()).to(dtype)


def _fft_size(n: int) -> int:
    """The smallest 5-smooth integer (2^a 3^b 5^c) >= n: a size the FFT handles fast."""
    while True:
        m = n
        for prime in (2, 3, 5):
            while m % prime == 0:
                m //= prime
        if m == 1:
            return n
        n += 1


def _blur(frames: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """FFT convolution of [M, C, H, W] frames with a centred odd [k, k] kernel, reflect borders."""
    pad = psf.shape[-1] // 2
    _, _, h, w = frames.shape
    padded = F.pad(frames, (pad, pad, pad, pad), mode="reflect")  # [M, C, H+2p, W+2p]
    # zero-padding to a 5-smooth size keeps the FFT fast; the kept window never wraps around
    fh, fw = _fft_size(padded.shape[-2]), _fft_size(padded.shape[-1])
    kernel = torch.zeros(fh, fw, device=frames.device, dtype=frames.dtype)
    kernel[:psf.shape[0], :psf.shape[1]] = psf
    kernel = torch.roll(kernel, shifts=(-pad, -pad), dims=(0, 1))  # centre at (0, 0)
    spectrum = torch.fft.rfft2(padded, s=(fh, fw)) * torch.fft.rfft2(kernel)
    out = torch.fft.irfft2(spectrum, s=(fh, fw))
    return out[..., pad:pad + h, pad:pad + w]


def _draw_noise(shape: torch.Size, device: torch.device,
                generator: torch.Generator | None) -> torch.Tensor:
    """Unit Gaussian noise drawn frame by frame, so a batch draws what its frames draw one by one."""
    gen_device = generator.device if generator is not None else device
    frames = [torch.randn(shape[1:], generator=generator, device=gen_device) for _ in range(shape[0])]
    return torch.stack(frames).to(device)


def expose(x: torch.Tensor, gain: float, photons_at_white: float, read_sigma: float,
           generator: torch.Generator | None) -> torch.Tensor:
    """The sensor behind an optic that lets ``1 / gain`` of the light through: the attenuated
    signal plus shot noise (variance ``signal / photons_at_white``) and read noise, then the
    auto-exposure gain that restores the brightness (and amplifies the noise).

    Args:
        x: [M, C, H, W] intensities in [0, 1] as an ideal sensor would record them.
        gain: auto-exposure gain (1 / transmittance).
        photons_at_white: photo-electrons of a white pixel without the optic.
        read_sigma: read noise, standard deviation in [0, 1] units.
        generator: source of the noise (frames draw in order, see :func:`simulate_lps`).

    Returns:
        [M, C, H, W], not clamped.
    """
    signal = (x / gain).clamp(min=0)
    sigma = torch.sqrt(signal / photons_at_white + read_sigma ** 2)
    return (signal + sigma * _draw_noise(x.shape, x.device, generator)) * gain


def simulate_lps(frames: torch.Tensor, level: int, generator: torch.Generator | None = None,
                 film: LPSFilm | None = None) -> torch.Tensor:
    """Degrades RGB frames as seen through ``level`` layers of laminating film.

    Args:
        frames: [..., 3, H, W] RGB, float in [0, 1] or uint8 (any device).
        level: film layers, 0 (returns ``frames`` unchanged) to 3.
        generator: source of the sensor noise (``None`` = torch's global generator); frames of a
            batch draw their noise in order, so a batch equals its frames degraded one by one with
            the same generator.
        film: film parameters (default :class:`LPSFilm`).

    Returns:
        Degraded frames, same shape, dtype and device (uint8 rounded and clamped; float clamped to
        [0, 1]).
    """
    _check_level(level)
    if level == 0:
        return frames
    if frames.ndim < 3 or frames.shape[-3] != 3:
        raise ValueError(f"simulate_lps expects [..., 3, H, W] frames, got {tuple(frames.shape)}")
    film = film or LPSFilm()
    lead, (c, h, w) = frames.shape[:-3], frames.shape[-3:]
    is_uint8 = frames.dtype == torch.uint8
    x = frames.reshape(-1, c, h, w).float()  # [M, 3, H, W]
    if is_uint8:
        x = x / PIXEL_MAX
    side = min(h, w)
    widest = max(sigma for _, sigma in film.psf_components(level, side))
    radius = min(math.ceil(PSF_TRUNCATE * widest), h - 1, w - 1)
    psf = lps_psf(level, 2 * radius + 1, side, device=x.device, film=film)
    x = _blur(x, psf)
    glare = film.glare_at(level)
    x = (1 - glare) * x + glare * x.mean(dim=(-2, -1), keepdim=True)
    tint = torch.tensor(film.tint, device=x.device) ** level
    x = x * tint[:, None, None]
    luma = torch.tensor(LUMA_WEIGHTS, device=x.device)
    y = (x * luma[:, None, None]).sum(dim=-3, keepdim=True)  # [M, 1, H, W]
    x = y + film.chroma_at(level) * (x - y)
    x = expose(x, film.gain_at(level), film.photons_at_white, film.read_sigma, generator)
    x = x.clamp(0, 1).reshape(*lead, c, h, w)
    if is_uint8:
        return (x * PIXEL_MAX).round().to(torch.uint8)
    return x.to(frames.dtype)
