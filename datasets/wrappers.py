"""Source wrappers: what happens to a clip between the source and the item builder.

- :class:`FilmClip`: the on-the-fly privacy-camera simulation (``LPS.DEVICE`` at ``LPS.LEVEL``:
  the film, :func:`datasets.lps.simulate_lps`, or a lensless / coded-aperture camera,
  :func:`datasets.optics.simulate_device`) on the RGB frames with a per-sample noise generator.
- :class:`RestoredClip`: an adversary's reconstruction of the frames with the film's known PSF
  (:func:`datasets.restore.restore_frames`: Wiener or Richardson-Lucy) or with a trained restorer
  (learned; run on the CPU of the process that reads the clip, on the whole recorded frames: the
  scale it was trained at, before the item's resize and crop).

Both keep the :class:`datasets.readers.Clip` interface (``num_frames``, ``read``, ``read_luma``),
so the item builder reads a wrapped clip as it reads any source; they read RGB from the source
and convert to gray after their transform when gray frames are asked for.
"""
from __future__ import annotations

import numpy as np
import torch

from datasets.optics import simulate_device
from datasets.readers import GRAY_LEVELS, Clip, Levels, to_gray
from datasets.restore import RL_ITERATIONS, WIENER_NSR, restore_frames
from utils.misc import PIXEL_MAX


class _RGBTransformClip:
    """A clip whose RGB frames pass through :meth:`transform` (gray is taken after it).

    Args:
        clip: the source clip (RGB frames).
    """

    def __init__(self, clip: Clip) -> None:
        self.clip = clip
        self.num_frames = clip.num_frames

    def transform(self, rgb: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, 3, H, W]`` -> uint8 ``[N, 3, H, W]``."""
        raise NotImplementedError

    def read(self, indices: np.ndarray, gray: bool) -> np.ndarray:
        """Transformed frames ``indices``: uint8 ``[N, H, W]`` (gray) or ``[N, H, W, 3]``."""
        rgb = torch.from_numpy(np.ascontiguousarray(self.clip.read(indices, gray=False)))
        frames = np.ascontiguousarray(self.transform(rgb.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy())
        return to_gray(frames) if gray else frames

    def read_luma(self, indices: np.ndarray) -> tuple[np.ndarray, Levels]:
        """Gray transformed frames and the identity levels."""
        return self.read(indices, gray=True), GRAY_LEVELS


class FilmClip(_RGBTransformClip):
    """A clip seen through a simulated privacy camera: ``level`` layers of film, or a lensless /
    coded-aperture camera of privacy ``level``.

    Args:
        clip: the source clip (RGB frames).
        level: privacy level, 1 to 3.
        generator: the sample's sensor-noise generator (seeded from the sample's draws).
        device: film | lensless | coded_aperture (:data:`datasets.optics.CAMERAS`).
    """

    def __init__(self, clip: Clip, level: int, generator: torch.Generator, device: str = "film") -> None:
        super().__init__(clip)
        self.level = level
        self.generator = generator
        self.device = device

    def transform(self, rgb: torch.Tensor) -> torch.Tensor:
        """The camera's measurement of uint8 ``[N, 3, H, W]`` frames."""
        return simulate_device(rgb, self.device, self.level, self.generator)


class RestoredClip(_RGBTransformClip):
    """A degraded clip deconvolved with the known PSF of ``level`` film layers, or restored by a
    trained network.

    Args:
        clip: the degraded clip (RGB frames).
        method: wiener | richardson_lucy | learned (``none`` returns the frames).
        level: film layers the frames went through.
        nsr: Wiener noise-to-signal ratio.
        iterations: Richardson-Lucy iterations.
        restorer: checkpoint of the learned restorer (loaded once per process).
        camera: the privacy camera of the frames (film | lensless | coded_aperture).
    """

    def __init__(self, clip: Clip, method: str, level: int, nsr: float = WIENER_NSR,
                 iterations: int = RL_ITERATIONS, restorer: str = "", camera: str = "film") -> None:
        super().__init__(clip)
        self.method = method
        self.level = level
        self.nsr = nsr
        self.iterations = iterations
        self.restorer = restorer
        self.camera = camera

    def transform(self, rgb: torch.Tensor) -> torch.Tensor:
        """The reconstruction of uint8 ``[N, 3, H, W]`` frames."""
        x = restore_frames(rgb.float() / PIXEL_MAX, self.method, self.level, self.nsr, self.iterations,
                           self.restorer, self.camera)
        return (x * PIXEL_MAX).round().to(torch.uint8)
