"""The item builder: the raw frames an input encoder asks for, as uint8, cropped and flipped.

For the sampled frame indices ``[C, T]`` of a sample (C temporal views) and the encoder's
:class:`~models.encoders.FrameRequest` (offsets from each t, gray or RGB), the builder reads the
distinct frames once, draws the spatial crop (one in training, ``TEST.NUM_CROP`` at test), the
flip, the brightness/contrast jitter and (RGB only) the random gray-scale, applies them to every
frame alike, and gathers the requested frames:

- train items: ``frames`` uint8 ``[T, F, C, S, S]``;
- test items: ``frames`` uint8 ``[V, T, F, C, S, S]`` with V = C x crops (clip-major: view =
  clip * num_crop + crop).

The precomputed layout (``request.planes``) yields the same item type: its three planes fd(t-1),
fd(t), avg(t) per sampled t take the place of the F = 3 gray frames.

With ``crop_on_device`` (gray requests only) the item holds the decoded frames uncropped,
``frames`` uint8 ``[U, H, W]`` (luma planes, :meth:`~datasets.readers.Clip.read_luma`), with
``windows`` int64 ``[(V,) T, F]`` (positions along U), ``boxes`` int64 ``[(V,) 5]``, ``levels``
float32 ``[2]`` and, in training, ``jitter`` float32 ``[2]``; :func:`datasets.device.to_device`
finishes them into the same ``frames`` on the device. Every random draw comes from the sample's
generator in one order: crops, then jitter, then gray-scale.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from datasets.readers import LEVEL_FIELDS, Clip, PrecomputedClip, to_gray
from datasets.transforms import (AREA_SHRINK, BOX_FIELDS, JITTER_FIELDS, CropBox, Jitter, crop_resize,
                                 draw_jitter, eval_crop_boxes, jitter_uint8, train_crop_box)
from models.encoders import FrameRequest
from utils.errors import UserError

NO_JITTER = Jitter(1.0, 1.0)

Fields = dict[str, tuple[tuple[int, ...], torch.dtype]]  # key -> (shape, dtype) of an item's arrays


def request_frames(indices: np.ndarray, offsets: Sequence[int], num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The frames a request reads.

    Args:
        indices: ``[..., T]`` sampled frame indices t.
        offsets: frame offsets from t.
        num_frames: frames in the clip (indices are clamped to it).

    Returns:
        ``(frame_ids [U], positions [..., T, F])``: the sorted distinct frames to decode, and for
        every sampled t the rows of its requested frames in ``frame_ids``.
    """
    wanted = np.asarray(indices, np.int64)[..., None] + np.asarray(offsets, np.int64)  # [..., T, F]
    wanted = np.minimum(np.maximum(wanted, 0), num_frames - 1)  # clamped (np.clip is slower on small arrays)
    frame_ids = np.unique(wanted)
    return frame_ids, np.searchsorted(frame_ids, wanted)


@dataclass(frozen=True)
class ItemBuilder:
    """Turns an opened sample and its sampled indices into an item (see the module docstring).

    Args:
        request: the encoder's frame request.
        input_size: output side S.
        train: one random crop, flip, jitter and gray-scale (else the ``num_crop`` test crops).
        scales: multi-scale crop ratios (train, ``AUG.SCALES``).
        flip: random horizontal flip (train).
        color_jitter: probability of brightness/contrast jitter (train).
        gray_scale: probability of gray-scale RGB frames (train, ``AUG.GRAY_SCALE``).
        num_crop: spatial test views, 1 or 3.
        crop_on_device: uncropped frames for the device (gray requests only).
    """

    request: FrameRequest
    input_size: int
    train: bool
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    color_jitter: float = 0.0
    gray_scale: float = 0.0
    num_crop: int = 1
    crop_on_device: bool = False

    def __post_init__(self) -> None:
        if self.crop_on_device and (not self.request.gray or self.request.planes):
            raise ValueError("crop_on_device needs gray frames (not RGB frames, not precomputed planes)")

    def fields(self, num_views: int) -> Fields:
        """Shapes and dtypes of an item's arrays (sizes that depend on the sample are 0)."""
        views = () if self.train else (num_views,)
        count, channels, size = len(self.request.offsets), self.request.channels, self.input_size
        if not self.crop_on_device:
            return {"frames": (views + (0, count, channels, size, size), torch.uint8)}
        fields = {"frames": ((0, 0, 0), torch.uint8), "windows": (views + (0, count), torch.int64),
                  "boxes": (views + (BOX_FIELDS,), torch.int64), "levels": ((LEVEL_FIELDS,), torch.float32)}
        if self.train:
            fields["jitter"] = ((JITTER_FIELDS,), torch.float32)
        return fields

    def _boxes(self, height: int, width: int, rng: np.random.Generator | None) -> list[CropBox]:
        if self.train:
            return [train_crop_box(height, width, list(self.scales), self.flip, rng)]
        return eval_crop_boxes(height, width, self.num_crop)

    def _draws(self, height: int, width: int, rng: np.random.Generator | None) -> tuple[list[CropBox], Jitter | None, bool]:
        """The spatial draws of a sample, in one order: crops, jitter, gray-scale."""
        boxes = self._boxes(height, width, rng)
        jitter = draw_jitter(self.color_jitter, rng) if self.train else None
        gray = self.train and not self.request.gray and rng.random() < self.gray_scale
        return boxes, jitter, gray

    def __call__(self, clip: Clip | PrecomputedClip, indices: np.ndarray, rng: np.random.Generator | None,
                 name: str = "") -> dict[str, np.ndarray]:
        """The array fields of one item.

        Args:
            clip: the opened (and wrapped) sample.
            indices: sampled frames ``[C, T]``.
            rng: the sample's generator (None for a test item: it draws nothing).
            name: the sample name (for errors).

        Raises:
            DataError: a missing or corrupt file of the sample.
            UserError: with ``crop_on_device``, frames that shrink 2x or more to the input size.
        """
        if self.request.planes:
            return self._planes_item(clip, indices, rng)
        frame_ids, positions = request_frames(indices, self.request.offsets, clip.num_frames)  # [C, T, F]
        if self.crop_on_device:
            return self._device_item(clip, frame_ids, positions, rng, name)
        frames = clip.read(frame_ids, gray=self.request.gray)  # [U, H, W(, 3)]
        boxes, jitter, gray = self._draws(frames.shape[1], frames.shape[2], rng)
        crops = [self._crop(frames, box, jitter, gray) for box in boxes]  # per box [U, C, S, S]
        if len(positions) * len(crops) == 1:  # the gather is the only copy
            view = crops[0][positions[0]]  # [T, F, C, S, S]
            return {"frames": view if self.train else view[None]}
        out = np.empty((len(positions) * len(crops),) + positions.shape[1:] + crops[0].shape[1:], np.uint8)
        for view, (clip_positions, crop) in enumerate(itertools.product(positions, crops)):
            for row, position in zip(out[view].reshape((-1,) + crop.shape[1:]), clip_positions.ravel()):
                row[...] = crop[position]  # frame by frame: faster than a gather into ``out``
        return {"frames": out}  # [V, T, F, C, S, S]

    def _crop(self, frames: np.ndarray, box: CropBox, jitter: Jitter | None, gray: bool) -> np.ndarray:
        """uint8 ``[U, C, S, S]`` crops of ``frames`` [U, H, W(, 3)] (a view when nothing changes)."""
        size = self.input_size
        if box.height == size and box.width == size and not box.flip and jitter is None and not gray:
            crops = frames[:, box.top:box.top + size, box.left:box.left + size]
        else:
            crops = crop_resize(frames, box, size)  # [U, S, S(, 3)]
        if gray:
            crops = np.repeat(to_gray(crops)[..., None], 3, axis=-1)
        crops = crops[:, None] if crops.ndim == 3 else np.moveaxis(crops, -1, 1)  # [U, C, S, S]
        if jitter is not None:  # per frame and channel, as on the gray frames
            u, c = crops.shape[:2]
            crops = jitter_uint8(crops.reshape(u * c, size, size), jitter).reshape(u, c, size, size)
        return crops

    def _planes_item(self, clip: PrecomputedClip, indices: np.ndarray, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
        planes = [clip.read_planes(clip_indices) for clip_indices in indices]  # C x [T, 3, H, W]
        count, height, width = planes[0].shape[1:]
        boxes, jitter, _ = self._draws(height, width, rng)
        views = []
        for clip_planes in planes:
            flat = clip_planes.reshape(-1, height, width)  # [T * 3, H, W]
            for box in boxes:
                views.append(self._crop(flat, box, jitter, False).reshape(-1, count, 1, self.input_size,
                                                                          self.input_size))  # [T, 3, 1, S, S]
        return {"frames": views[0] if self.train else np.stack(views)}

    def _device_item(self, clip: Clip, frame_ids: np.ndarray, positions: np.ndarray, rng: np.random.Generator | None,
                     name: str) -> dict[str, np.ndarray]:
        frames, levels = clip.read_luma(frame_ids)  # [U, H, W]
        boxes, jitter, _ = self._draws(frames.shape[1], frames.shape[2], rng)
        if max(box.shrink(self.input_size) for box in boxes) >= AREA_SHRINK:
            raise UserError(f"sample {name}: frames of {frames.shape[1]}x{frames.shape[2]} shrink "
                            f"{AREA_SHRINK}x or more to DATA.INPUT_SIZE {self.input_size}, which "
                            "DATA.CROP_ON_DEVICE does not resize (bilinear only); store smaller frames "
                            "(tools/pack_dataset.py --short-side) or set DATA.CROP_ON_DEVICE False")
        windows = np.repeat(positions, len(boxes), axis=0)  # [V, T, F], view = clip * crops + crop
        box_array = np.tile(np.stack([box.as_array() for box in boxes]), (len(positions), 1))  # [V, 5]
        if not (frames.flags.writeable and frames.flags.c_contiguous):  # a view of a packed store
            frames = np.array(frames, order="C")
        item = {"frames": frames, "levels": np.array(levels, np.float32)}
        if self.train:
            item.update(windows=windows[0], boxes=box_array[0], jitter=(jitter or NO_JITTER).as_array())
        else:
            item.update(windows=windows, boxes=box_array)
        return item
