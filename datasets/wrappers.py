"""Source wrappers: what happens to a clip between the source and the item builder.

- :class:`FilmClip`: the on-the-fly film simulation (``LPS.LEVEL``), :func:`datasets.lps.simulate_lps`
  on the RGB frames with a per-sample noise generator.
- :class:`RestoredClip`: an adversary's reconstruction of the frames with the film's known PSF
  (:func:`datasets.restore.restore_frames`: Wiener or Richardson-Lucy).

Both keep the :class:`datasets.readers.Clip` interface (``num_frames``, ``read``, ``read_luma``),
so the item builder reads a wrapped clip as it reads any source; they read RGB from the source
and convert to gray after their transform when gray frames are asked for.
"""
from __future__ import annotations

import numpy as np
import torch

from datasets.lps import simulate_lps
from datasets.readers import GRAY_LEVELS, Clip, Levels, to_gray
from datasets.restore import RL_ITERATIONS, WIENER_NSR, restore_frames
from utils.misc import PIXEL_MAX


class FilmClip:
    """A clip seen through ``level`` layers of simulated film.

    Args:
        clip: the source clip (RGB frames).
        level: film layers, 1 to 3.
        generator: the sample's sensor-noise generator (seeded from the sample's draws).
    """

    def __init__(self, clip: Clip, level: int, generator: torch.Generator) -> None:
        self.clip = clip
        self.level = level
        self.generator = generator
        self.num_frames = clip.num_frames

    def read(self, indices: np.ndarray, gray: bool) -> np.ndarray:
        """Degraded frames ``indices``: uint8 ``[N, H, W]`` (gray) or ``[N, H, W, 3]``."""
        rgb = torch.from_numpy(np.ascontiguousarray(self.clip.read(indices, gray=False)))
        degraded = simulate_lps(rgb.permute(0, 3, 1, 2), self.level, self.generator)  # [N, 3, H, W]
        frames = np.ascontiguousarray(degraded.permute(0, 2, 3, 1).numpy())
        return to_gray(frames) if gray else frames

    def read_luma(self, indices: np.ndarray) -> tuple[np.ndarray, Levels]:
        """Gray degraded frames and the identity levels."""
        return self.read(indices, gray=True), GRAY_LEVELS


class RestoredClip:
    """A degraded clip deconvolved with the known PSF of ``level`` film layers.

    Args:
        clip: the degraded clip (RGB frames).
        method: wiener | richardson_lucy (``none`` returns the frames).
        level: film layers the frames went through.
        nsr: Wiener noise-to-signal ratio.
        iterations: Richardson-Lucy iterations.
    """

    def __init__(self, clip: Clip, method: str, level: int, nsr: float = WIENER_NSR,
                 iterations: int = RL_ITERATIONS) -> None:
        self.clip = clip
        self.method = method
        self.level = level
        self.nsr = nsr
        self.iterations = iterations
        self.num_frames = clip.num_frames

    def read(self, indices: np.ndarray, gray: bool) -> np.ndarray:
        """Restored frames ``indices``: uint8 ``[N, H, W]`` (gray) or ``[N, H, W, 3]``."""
        rgb = torch.from_numpy(np.ascontiguousarray(self.clip.read(indices, gray=False)))
        x = rgb.permute(0, 3, 1, 2).float() / PIXEL_MAX  # [N, 3, H, W]
        x = restore_frames(x, self.method, self.level, self.nsr, self.iterations)
        frames = (x * PIXEL_MAX).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
        return to_gray(frames) if gray else frames

    def read_luma(self, indices: np.ndarray) -> tuple[np.ndarray, Levels]:
        """Gray restored frames and the identity levels."""
        return self.read(indices, gray=True), GRAY_LEVELS
