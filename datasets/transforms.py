"""Spatial transforms, applied alike to every frame of a clip on uint8 frames before the planes.

Training: multi-scale crop (TSN style: height and width ratios drawn from ``AUG.SCALES`` at most
one step apart, random position) resized to a square, optional horizontal flip, and brightness /
contrast jitter with probability ``AUG.COLOR_JITTER``. Jitter is applied to the gray frames:
brightness and contrast are affine in the pixel values, and so is the gray conversion, so
jittering gray equals jittering RGB then converting (up to clamping); RGB frames are jittered per
channel. ``AUG.GRAY_SCALE`` (random gray-scale, probability 0.2 in the original config) applies to
RGB frames; gray frames are gray already.
Test: resize the short side to the input size, then the centre crop or three crops along the long
side; done as one crop-and-resize of the matching box of the original frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from utils.misc import PIXEL_MAX

JITTER_STRENGTH = 0.4  # brightness and contrast factors drawn from [1 - s, 1 + s]
MAX_SCALE_DISTORTION = 1  # TSN: height and width scale indices differ by at most this
AREA_SHRINK = 2  # area interpolation from this shrink factor on, bilinear below
TEST_CROPS = (1, 3)  # TEST.NUM_CROP choices: the centre, or three along the long side
BOX_FIELDS = 5  # a box as integers: top, left, height, width, flip
JITTER_FIELDS = 2  # a jitter as floats: brightness, contrast


@dataclass(frozen=True)
class CropBox:
    """A crop of the original frame, resized to the square input, optionally flipped.

    Args:
        top: first row.
        left: first column.
        height: rows.
        width: columns.
        flip: mirror horizontally after the crop.
    """

    top: int
    left: int
    height: int
    width: int
    flip: bool = False

    def as_array(self) -> np.ndarray:
        """int64 ``[5]`` (top, left, height, width, flip): a box for :func:`crop_resize_torch`."""
        return np.array([self.top, self.left, self.height, self.width, self.flip], np.int64)

    def shrink(self, size: int) -> float:
        """The factor by which resizing the box to ``size x size`` shrinks its short side.

        Args:
            size: output side.
        """
        return min(self.height, self.width) / size


@dataclass(frozen=True)
class Jitter:
    """Brightness and contrast factors (1 = unchanged).

    Args:
        brightness: multiplies the pixel values.
        contrast: scales the distance of each pixel to its frame mean.
    """

    brightness: float
    contrast: float

    def as_array(self) -> np.ndarray:
        """float32 ``[2]`` (brightness, contrast): the item's ``jitter`` for :func:`apply_jitter_torch`."""
        return np.array([self.brightness, self.contrast], np.float32)


def train_crop_box(height: int, width: int, scales: list[float], flip: bool,
                   rng: np.random.Generator) -> CropBox:
    """Draws a multi-scale crop of an ``height x width`` frame.

    Args:
        height: frame rows.
        width: frame columns.
        scales: side ratios of the short side (``AUG.SCALES``).
        flip: allow a random horizontal flip (probability 0.5).
        rng: the sample's generator.
    """
    base = min(height, width)
    sides = [max(1, int(base * s)) for s in scales]
    pairs = [(h, w) for i, h in enumerate(sides) for j, w in enumerate(sides)
             if abs(i - j) <= MAX_SCALE_DISTORTION]
    crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
    top = int(rng.integers(height - crop_h + 1))
    left = int(rng.integers(width - crop_w + 1))
    mirrored = bool(flip and rng.random() < 0.5)
    return CropBox(top, left, crop_h, crop_w, mirrored)


def eval_crop_boxes(height: int, width: int, num_crop: int) -> list[CropBox]:
    """Boxes of "resize the short side, then crop a square": the centre (1) or start, centre and
    end along the long side (3).

    Args:
        height: frame rows.
        width: frame columns.
        num_crop: 1 or 3.
    """
    side = min(height, width)
    if num_crop == 1:
        return [CropBox((height - side) // 2, (width - side) // 2, side, side)]
    slack_h, slack_w = height - side, width - side
    return [CropBox(slack_h * k // 2, slack_w * k // 2, side, side) for k in range(3)]


def crop_resize(frames: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Crops ``box`` from every frame and resizes it to ``size x size`` (uint8 in, uint8 out).

    Bilinear, except for a shrink by :data:`AREA_SHRINK` or more, where area averaging avoids
    aliasing (OpenCV's area filter is 6x slower than bilinear for a mild shrink such as 256 -> 224);
    a box that already has the output size is only copied.

    Args:
        frames: uint8 ``[N, H, W]`` or ``[N, H, W, 3]``.
        box: the crop.
        size: output side.

    Returns:
        uint8 ``[N, size, size(, 3)]``, a new contiguous array.
    """
    crops = frames[:, box.top:box.top + box.height, box.left:box.left + box.width]
    if box.height == size and box.width == size:
        return np.array(crops[:, :, ::-1] if box.flip else crops, order="C")  # always a copy
    interpolation = cv2.INTER_AREA if box.shrink(size) >= AREA_SHRINK else cv2.INTER_LINEAR
    out = np.empty((len(crops), size, size) + frames.shape[3:], frames.dtype)  # [N, S, S(, 3)]
    resized = np.empty_like(out[0]) if box.flip else None
    for crop, dst in zip(crops, out):
        if box.flip:  # resize, then mirror (the resize is not exactly mirror-symmetric)
            cv2.resize(crop, (size, size), dst=resized, interpolation=interpolation)
            cv2.flip(resized, 1, dst=dst)
        else:
            cv2.resize(crop, (size, size), dst=dst, interpolation=interpolation)
    return out


def _source_coords(start: torch.Tensor, length: torch.Tensor, size: int, extent: int) -> torch.Tensor:
    """Normalised grid coordinates (``align_corners=False``) of OpenCV's bilinear sampling of a
    ``length``-pixel run from ``start`` resized to ``size``: source pixel ``(i + 0.5) * length /
    size - 0.5`` of the run, clamped to the run (OpenCV replicates the crop's border).

    Args:
        start: int64 ``[...]`` first pixel of each run.
        length: int64 ``[...]`` pixels in each run.
        size: output pixels.
        extent: pixels of the frame along this axis.

    Returns:
        float32 ``[..., size]``.
    """
    steps = torch.arange(size, device=start.device, dtype=torch.float32) + 0.5  # [S]
    run = length.to(torch.float32)[..., None]  # [..., 1]
    source = (steps * run / size - 0.5).clamp(min=0.0)
    source = torch.minimum(source, run - 1) + start.to(torch.float32)[..., None]  # [..., S]
    return (source + 0.5) * (2.0 / extent) - 1.0


def crop_resize_torch(frames: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`crop_resize` on the device for a batch of clips and several boxes per clip:
    OpenCV's bilinear resize (its sample positions and border rule, in float arithmetic), then
    the flip. Boxes must shrink by less than :data:`AREA_SHRINK` (the bilinear regime).

    Args:
        frames: float ``[B, U, H, W]`` frames.
        boxes: int64 ``[B, V, 5]`` boxes per clip (:meth:`CropBox.as_array`).
        size: output side S.

    Returns:
        float ``[B, V, U, S, S]``.
    """
    batch, count, height, width = frames.shape
    views = boxes.shape[1]
    top, left, box_height, box_width, flip = boxes.to(frames.device).unbind(-1)  # [B, V] each
    rows = _source_coords(top, box_height, size, height)  # [B, V, S]
    cols = _source_coords(left, box_width, size, width)  # [B, V, S]
    cols = torch.where(flip[..., None].bool(), cols.flip(-1), cols)
    grid = torch.stack(torch.broadcast_tensors(cols[:, :, None, :], rows[:, :, :, None]), dim=-1)  # [B, V, S, S, 2]
    # The views stacked along the output rows: one sampling pass over the frames of each clip.
    out = F.grid_sample(frames, grid.reshape(batch, views * size, size, 2), mode="bilinear",
                        padding_mode="border", align_corners=False)  # [B, U, V * S, S]
    return out.view(batch, count, views, size, size).transpose(1, 2)  # [B, V, U, S, S]


def draw_jitter(probability: float, rng: np.random.Generator) -> Jitter | None:
    """Draws a brightness/contrast jitter with ``probability`` (``AUG.COLOR_JITTER``), else None."""
    if rng.random() >= probability:
        return None
    low, high = 1.0 - JITTER_STRENGTH, 1.0 + JITTER_STRENGTH
    return Jitter(float(rng.uniform(low, high)), float(rng.uniform(low, high)))


def apply_jitter(gray: np.ndarray, jitter: Jitter) -> np.ndarray:
    """Applies ``jitter`` to float gray frames ``[N, H, W]`` on the 0..255 scale (clamped)."""
    out = gray * jitter.brightness
    mean = out.mean(axis=(1, 2), keepdims=True)  # [N, 1, 1]
    out = (out - mean) * jitter.contrast + mean
    return np.clip(out, 0.0, PIXEL_MAX).astype(np.float32)


def jitter_uint8(frames: np.ndarray, jitter: Jitter) -> np.ndarray:
    """:func:`apply_jitter` of uint8 frames ``[N, H, W]``, rounded back to uint8."""
    return np.rint(apply_jitter(frames.astype(np.float32), jitter)).astype(np.uint8)


def apply_jitter_torch(gray: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
    """:func:`apply_jitter` in torch, one jitter per sample: the same math and clamping.

    Items without a jitter carry the identity ``(1, 1)`` and come back unchanged (bit for bit).

    Args:
        gray: float32 ``[B, ..., H, W]`` frames on the 0..255 scale (each frame's own mean is used).
        jitter: float32 ``[B, 2]`` (brightness, contrast) per sample, see :meth:`Jitter.as_array`.

    Returns:
        float32 ``[B, ..., H, W]``.
    """
    factors = jitter.to(gray.dtype).reshape(jitter.shape[:1] + (1,) * (gray.dim() - 1) + (2,))
    brightness, contrast = factors.unbind(-1)  # [B, 1, ..., 1] each
    out = gray * brightness
    mean = out.mean(dim=(-2, -1), keepdim=True)  # [B, ..., 1, 1]
    out = ((out - mean) * contrast + mean).clamp_(0.0, PIXEL_MAX)
    identity = (jitter == 1.0).all(dim=-1).reshape(brightness.shape)  # [B, 1, ..., 1]
    return torch.where(identity, gray, out)
