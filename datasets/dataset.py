"""The clip dataset: one decode per sample, IFNS planes, augmentation, CLIP normalisation (or,
with ``planes_on_device``, only the augmented uint8 frame windows the planes are computed from;
with ``crop_on_device`` too, the decoded frames and what the device needs to crop them).

Every random draw of a sample (frames, crop, flip, jitter, LPS noise) comes from a generator
seeded with (seed, epoch, index), so a sample is the same whatever the worker, the number of
workers or ranks, or a resume. The train sampler passes ``(index, epoch)`` keys for this.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, NamedTuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.ifns import (PLANES, WINDOW_EXTRA, PlaneNorm, ifns_planes, ifns_planes_uint8,
                          needed_frames, normalize_uint8_planes, window_positions)
from datasets.lps import simulate_lps
from datasets.ntu import parse_name
from datasets.rgb_input import rgb_pair_views
from datasets.readers import GRAY_LEVELS, LEVEL_FIELDS, Clip, DataError, Levels, PrecomputedClip, to_gray
from datasets.sampling import eval_indices, train_indices
from datasets.transforms import (AREA_SHRINK, BOX_FIELDS, JITTER_FIELDS, CropBox, Jitter, apply_jitter,
                                 crop_resize, draw_jitter, eval_crop_boxes, train_crop_box)
from utils.errors import UserError

logger = logging.getLogger(__name__)

MAX_SKIPS = 16  # training: consecutive unreadable samples tolerated before giving up
SEED_BITS = 63
NO_JITTER = Jitter(1.0, 1.0)  # the ``jitter`` of a window item drawn without jitter
SCALAR_KEYS = ("label", "identity", "index", "num_bad")  # item fields collated as int64 [B]

ClipOpener = Callable[[str], Union[Clip, PrecomputedClip]]


class Decoded(NamedTuple):
    """A sample's decoded frames and its spatial draws (see :meth:`ClipDataset._decode`)."""

    frame_ids: np.ndarray  # [U] sorted frame indices
    frames: np.ndarray  # uint8 [U, H, W]
    levels: Levels  # gray = scale * frames + offset
    boxes: list[CropBox]
    jitter: Jitter | None


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` in ``epoch`` (a pure function of the three numbers)."""
    return np.random.default_rng([seed, epoch, index])


class ClipDataset(Dataset):
    """NTU-named clips turned into normalised IFNS planes.

    Train items: ``clips`` float32 [T, 3, S, S]; test items: ``clips`` [V, T, 3, S, S] with
    V = num_clip * num_crop (clip-major: view = clip * num_crop + crop). Both also carry ``label``,
    ``identity``, ``index`` and ``num_bad`` (unreadable samples skipped to produce this item).
    With ``planes_on_device``, ``clips`` holds uint8 frame windows instead, [T, k + 2, S, S] (train)
    or [V, T, k + 2, S, S] (test): the cropped, resized and flipped gray frames t-k-1..t of every
    sampled t, for :func:`~datasets.ifns.planes_from_windows`; train items also carry ``jitter``,
    float32 [2] brightness and contrast ((1, 1) when none was drawn), applied there. With
    ``crop_on_device`` as well, ``clips`` holds the decoded uint8 frames [U, H, W] the windows need,
    uncropped, for :func:`~datasets.ifns.planes_from_frames`, with ``windows`` int64 [T, k + 2]
    (test: [V, T, k + 2]) their positions along U, ``boxes`` int64 [5] (test: [V, 5]) and
    ``levels`` float32 [2] (:meth:`~datasets.readers.Clip.read_luma`).

    Args:
        names: canonical sample names.
        opener: opens a sample by name (a :class:`~datasets.readers.Clip`, or a
            :class:`~datasets.readers.PrecomputedClip` for the precomputed layout).
        train: random sampling and augmentation (else deterministic multi-view).
        num_frames: T.
        fd_stride: IFNS stride k.
        input_size: output side S.
        scales: multi-scale crop ratios (train).
        flip: random horizontal flip (train).
        color_jitter: probability of brightness/contrast jitter (train).
        num_clip: temporal views (test).
        num_crop: spatial views, 1 or 3 (test).
        seed: base seed of every random draw.
        lps_level: on-the-fly film simulation level (0 = off).
        skip_bad: skip unreadable samples (train: the next sample replaces it; test: the item
            is None and the collate drops it) instead of raising.
        rgb_pairs: items are pairs of RGB frames for a baseline input encoder instead of planes.
        plane_norm: normalisation of the planes (CLIP's by default).
        planes_on_device: items are uint8 frame windows (and the jitter) instead of planes.
        crop_on_device: with ``planes_on_device``, items are the uncropped frames, window
            positions, boxes and levels instead of windows.
    """

    def __init__(self, *, names: list[str], opener: ClipOpener, train: bool, num_frames: int,
                 fd_stride: int, input_size: int, scales: list[float], flip: bool,
                 color_jitter: float, num_clip: int, num_crop: int, seed: int, lps_level: int,
                 skip_bad: bool, rgb_pairs: bool = False,
                 plane_norm: PlaneNorm = PlaneNorm(), planes_on_device: bool = False,
                 crop_on_device: bool = False) -> None:
        if crop_on_device and not planes_on_device:
            raise ValueError("crop_on_device needs planes_on_device")
        self.names = list(names)
        parsed = [parse_name(n) for n in self.names]
        self.labels = [p.label for p in parsed]
        self.identities = [p.identity for p in parsed]
        self.opener = opener
        self.train = train
        self.num_frames = num_frames
        self.fd_stride = fd_stride
        self.input_size = input_size
        self.scales = list(scales)
        self.flip = flip
        self.color_jitter = color_jitter
        self.num_clip = num_clip
        self.num_crop = num_crop
        self.seed = seed
        self.lps_level = lps_level
        self.skip_bad = skip_bad
        self.rgb_pairs = rgb_pairs
        self.plane_norm = plane_norm
        self.planes_on_device = planes_on_device
        self.crop_on_device = crop_on_device

    @property
    def num_views(self) -> int:
        """Views per test item (1 in training)."""
        return 1 if self.train else self.num_clip * self.num_crop

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one item's ``clips`` (with ``crop_on_device``: frames ``[U, H, W]`` whose sizes
        depend on the sample, zeros here)."""
        if self.crop_on_device:
            return (0, 0, 0)
        frame = (self.num_frames, PLANES, self.input_size, self.input_size)
        if self.planes_on_device:
            frame = (self.num_frames, self.fd_stride + WINDOW_EXTRA, self.input_size, self.input_size)
        if self.rgb_pairs:
            frame = (self.num_frames, 2, 3, self.input_size, self.input_size)
        return frame if self.train else (self.num_views,) + frame

    @property
    def item_dtype(self) -> torch.dtype:
        """dtype of one item's ``clips``."""
        return torch.uint8 if self.planes_on_device else torch.float32

    @property
    def extra_fields(self) -> tuple[tuple[str, tuple[int, ...], torch.dtype], ...]:
        """``(key, shape, dtype)`` of the items' other array fields (for an empty batch)."""
        fields = []
        if self.planes_on_device and self.train:
            fields.append(("jitter", (JITTER_FIELDS,), torch.float32))
        if self.crop_on_device:
            views = () if self.train else (self.num_views,)
            fields += [("windows", views + (self.num_frames, self.fd_stride + WINDOW_EXTRA), torch.int64),
                       ("boxes", views + (BOX_FIELDS,), torch.int64),
                       ("levels", (LEVEL_FIELDS,), torch.float32)]
        return tuple(fields)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, key: int | tuple[int, int]) -> dict | None:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        for skipped in range(MAX_SKIPS if self.skip_bad else 1):
            current = (index + skipped) % len(self.names)
            try:
                arrays = self.load_item(current, epoch)
            except DataError as exc:
                if not self.skip_bad:
                    raise
                logger.warning("skipping unreadable sample: %s", exc)
                if not self.train:
                    return None
                continue
            item = {key: torch.from_numpy(value) for key, value in arrays.items()}
            item.update(label=self.labels[current], identity=self.identities[current], index=current,
                        num_bad=skipped)
            return item
        raise DataError(f"{MAX_SKIPS} consecutive samples from {self.names[index]} are unreadable; "
                        "check the data folder")

    def frame_indices(self, num_frames_in_clip: int, rng: np.random.Generator) -> np.ndarray:
        """Sampled frames ``[C, T]`` (C = 1 in training)."""
        if self.train:
            return train_indices(num_frames_in_clip, self.num_frames, rng)[None]
        return eval_indices(num_frames_in_clip, self.num_frames, self.num_clip)

    def load(self, index: int, epoch: int = 0) -> np.ndarray:
        """Reads and transforms sample ``index``; returns :attr:`item_shape` clips of
        :attr:`item_dtype` (float32 planes, or uint8 windows with ``planes_on_device``).

        Raises:
            DataError: a missing or corrupt file of the sample.
        """
        return self.load_item(index, epoch)["clips"]

    def load_item(self, index: int, epoch: int = 0) -> dict[str, np.ndarray]:
        """The array fields of item ``index`` (see the class docstring): ``clips`` and, with
        ``planes_on_device``, :attr:`extra_fields`.

        Raises:
            DataError: a missing or corrupt file of the sample.
        """
        rng = sample_rng(self.seed, epoch, index)
        clip = self.opener(self.names[index])
        indices = self.frame_indices(clip.num_frames, rng)  # [C, T]
        if isinstance(clip, PrecomputedClip):
            if self.planes_on_device:
                raise ValueError("planes_on_device needs frames; the precomputed layout holds planes")
            views, jitter = self._precomputed_views(clip, indices, rng)
        elif self.crop_on_device:
            return self._frame_item(self.names[index], clip, indices, rng)
        elif self.planes_on_device:
            views, jitter = self._window_views(clip, indices, rng)
        else:
            views, jitter = self._derived_views(clip, indices, rng)
        if self.train:  # [T, 3, S, S] (windows: [T, k + 2, S, S])
            item = {"clips": views[0]}
        else:  # [V, T, ...]
            item = {"clips": views[0][None] if len(views) == 1 else np.stack(views)}
        if self.planes_on_device and self.train:
            item["jitter"] = (jitter or NO_JITTER).as_array()
        return item

    def _boxes(self, height: int, width: int, rng: np.random.Generator) -> list[CropBox]:
        if self.train:
            return [train_crop_box(height, width, self.scales, self.flip, rng)]
        return eval_crop_boxes(height, width, self.num_crop)

    def _gray_frames(self, clip: Clip, frame_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """uint8 [U, H, W] gray of the (degraded) frames ``frame_ids``."""
        if self.lps_level == 0:
            return clip.read(frame_ids, gray=True)
        rgb = torch.from_numpy(clip.read(frame_ids, gray=False)).permute(0, 3, 1, 2)  # [U, 3, H, W]
        generator = torch.Generator().manual_seed(int(rng.integers(2 ** SEED_BITS)))
        degraded = simulate_lps(rgb, self.lps_level, generator).permute(0, 2, 3, 1).numpy()
        return to_gray(np.ascontiguousarray(degraded))

    def _frame_item(self, name: str, clip: Clip, indices: np.ndarray,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The fields of a ``crop_on_device`` item, with the same draws as :meth:`_derived_views`.

        Args:
            name: the sample name (for the error).
            clip: the opened sample.
            indices: sampled frames ``[C, T]``.
            rng: the sample's generator.

        Raises:
            UserError: a box that shrinks the frames by :data:`~datasets.transforms.AREA_SHRINK`
                or more (the device resizes bilinearly).
        """
        frame_ids, frames, levels, boxes, jitter = self._decode(clip, indices, rng, luma=True)
        if max(box.shrink(self.input_size) for box in boxes) >= AREA_SHRINK:
            raise UserError(f"sample {name}: frames of "
                            f"{frames.shape[1]}x{frames.shape[2]} shrink {AREA_SHRINK}x or more to "
                            f"DATA.INPUT_SIZE {self.input_size}, which DATA.CROP_ON_DEVICE does not "
                            "resize (bilinear only); store smaller frames (tools/pack_dataset.py "
                            "--short-side) or set DATA.CROP_ON_DEVICE False")
        positions = window_positions(frame_ids, indices, self.fd_stride, clip.num_frames)  # [C, T, k + 2]
        windows = np.repeat(positions, len(boxes), axis=0)  # [V, T, k + 2], view = clip * crops + crop
        box_array = np.tile(np.stack([box.as_array() for box in boxes]), (len(positions), 1))  # [V, 5]
        if not (frames.flags.writeable and frames.flags.c_contiguous):  # a view of a packed store
            frames = np.array(frames, order="C")
        item = {"clips": frames, "levels": np.array(levels, np.float32)}
        if self.train:
            item.update(windows=windows[0], boxes=box_array[0], jitter=(jitter or NO_JITTER).as_array())
        else:
            item.update(windows=windows, boxes=box_array)
        return item

    def _decode(self, clip: Clip, indices: np.ndarray, rng: np.random.Generator,
                luma: bool = False) -> Decoded:
        """Reads the frames the planes of ``indices`` need, then draws the boxes and the jitter:
        the draws of every frame-based item, in one order, so planes, windows and frames items
        of a sample agree.

        Args:
            clip: the opened sample.
            indices: sampled frames ``[C, T]``.
            rng: the sample's generator.
            luma: read the reader's luma and its levels (:meth:`~datasets.readers.Clip.read_luma`)
                unless the film is simulated; else gray frames.
        """
        frame_ids = needed_frames(indices, self.fd_stride, clip.num_frames)
        if luma and self.lps_level == 0:
            frames, levels = clip.read_luma(frame_ids)
        else:
            frames, levels = self._gray_frames(clip, frame_ids, rng), GRAY_LEVELS
        boxes = self._boxes(frames.shape[1], frames.shape[2], rng)
        jitter = draw_jitter(self.color_jitter, rng) if self.train else None
        return Decoded(frame_ids, frames, levels, boxes, jitter)

    def _window_views(self, clip: Clip, indices: np.ndarray,
                      rng: np.random.Generator) -> tuple[list[np.ndarray], Jitter | None]:
        """uint8 windows [T, k + 2, S, S] per view, with the same draws as :meth:`_derived_views`."""
        frame_ids, frames, _, boxes, jitter = self._decode(clip, indices, rng)
        positions = window_positions(frame_ids, indices, self.fd_stride, clip.num_frames)  # [C, T, k + 2]
        crops = [self._window_source(frames, box) for box in boxes]  # B x uint8 [U, S, S]
        return [crop[clip_positions] for clip_positions in positions for crop in crops], jitter

    def _window_source(self, frames: np.ndarray, box: CropBox) -> np.ndarray:
        """uint8 [U, S, S] crops of ``box`` to gather the windows from: a view of ``frames`` when
        the box needs neither a resize nor a flip (the gather is then the only copy)."""
        size = self.input_size
        if box.height == size and box.width == size and not box.flip:
            return frames[:, box.top:box.top + size, box.left:box.left + size]
        return crop_resize(frames, box, size)

    def _derived_views(self, clip: Clip, indices: np.ndarray,
                       rng: np.random.Generator) -> tuple[list[np.ndarray], Jitter | None]:
        if self.rgb_pairs:
            jitter = draw_jitter(self.color_jitter, rng) if self.train else None
            return rgb_pair_views(clip, indices, stride=self.fd_stride, size=self.input_size,
                                  lps_level=self.lps_level, make_boxes=lambda h, w: self._boxes(h, w, rng),
                                  jitter=jitter, rng=rng), jitter
        n = clip.num_frames
        frame_ids, frames, _, boxes, jitter = self._decode(clip, indices, rng)
        views = [[] for _ in range(len(indices))]
        for box in boxes:
            crops = crop_resize(frames, box, self.input_size)  # uint8 [U, S, S]
            # Jitter clamps non-integer values: its frames take the float reference path.
            gray = None if jitter is None else apply_jitter(crops.astype(np.float32), jitter)
            for c, clip_indices in enumerate(indices):
                if gray is None:  # differences, sums and normalisation on the uint8 crops
                    planes = ifns_planes_uint8(crops, frame_ids, clip_indices, self.fd_stride, n,
                                               self.plane_norm)
                else:
                    planes = self.plane_norm(ifns_planes(gray, frame_ids, clip_indices, self.fd_stride, n))
                views[c].append(planes)  # [T, 3, S, S]
        return [view for per_clip in views for view in per_clip], jitter

    def _precomputed_views(self, clip: PrecomputedClip, indices: np.ndarray,
                           rng: np.random.Generator) -> tuple[list[np.ndarray], Jitter | None]:
        planes = [clip.read_planes(clip_indices) for clip_indices in indices]  # C x [T, 3, H, W]
        height, width = planes[0].shape[2:]
        boxes = self._boxes(height, width, rng)
        jitter = draw_jitter(self.color_jitter, rng) if self.train else None
        shape = (-1, PLANES, self.input_size, self.input_size)
        views = []
        for clip_planes in planes:
            flat = clip_planes.reshape(-1, height, width)  # [T*3, H, W]
            for box in boxes:
                crops = crop_resize(flat, box, self.input_size)  # uint8 [T*3, S, S]
                if jitter is None:
                    views.append(normalize_uint8_planes(crops.reshape(shape), self.plane_norm))
                else:
                    jittered = apply_jitter(crops.astype(np.float32), jitter)
                    views.append(self.plane_norm(jittered.reshape(shape)))  # [T, 3, S, S]
        return views, jitter


@dataclass(frozen=True)
class ClipCollate:
    """Stacks items into a batch, dropping None items (skipped test samples).

    Batch: ``clips`` [B, ...item_shape] (float32 planes or uint8 windows; ``crop_on_device``
    frames [U, H, W] zero-padded to the batch's largest U), ``label``/``identity``/``index`` int64
    [B], ``num_bad`` int64 scalar (unreadable samples skipped for this batch), and the items'
    other array fields stacked (``jitter`` [B, 2] of training windows; ``windows``, ``boxes``,
    ``levels`` with ``crop_on_device``).

    Args:
        item_shape: shape of one item's clips (used for an all-skipped, empty batch).
        item_dtype: dtype of one item's clips (likewise).
        extra_fields: ``(key, shape, dtype)`` of the other array fields (likewise),
            :attr:`ClipDataset.extra_fields`.
    """

    item_shape: tuple[int, ...]
    item_dtype: torch.dtype = torch.float32
    extra_fields: tuple[tuple[str, tuple[int, ...], torch.dtype], ...] = ()

    def __call__(self, items: list[dict | None]) -> dict[str, torch.Tensor]:
        kept = [item for item in items if item is not None]
        num_bad = len(items) - len(kept) + sum(item["num_bad"] for item in kept)
        if not kept:
            batch = {"clips": torch.empty((0,) + tuple(self.item_shape), dtype=self.item_dtype)}
            batch.update({key: torch.empty((0,) + shape, dtype=dtype) for key, shape, dtype in self.extra_fields})
        else:
            batch = {"clips": _stack_padded([item["clips"] for item in kept])}
            batch.update({key: torch.stack([item[key] for item in kept])
                          for key in kept[0] if key != "clips" and key not in SCALAR_KEYS})
        for key in ("label", "identity", "index"):
            batch[key] = torch.tensor([item[key] for item in kept], dtype=torch.long)
        batch["num_bad"] = torch.tensor(num_bad, dtype=torch.long)
        return batch


def _stack_padded(clips: list[torch.Tensor]) -> torch.Tensor:
    """Stacks tensors that may differ in their first dimension (frame counts), zero-padding it.

    Args:
        clips: the items' tensors ``[N_i, ...]``, equal beyond the first dimension.

    Raises:
        UserError: the other dimensions differ (frames of different sizes in one batch).
    """
    shapes = {tuple(c.shape[1:]) for c in clips}
    if len(shapes) > 1:
        raise UserError(f"DATA.CROP_ON_DEVICE batches frames of one size, but this batch holds "
                        f"{sorted(shapes)}; store the frames at one size (tools/pack_dataset.py "
                        "--short-side) or set DATA.CROP_ON_DEVICE False")
    longest = max(len(c) for c in clips)
    if all(len(c) == longest for c in clips):
        return torch.stack(clips)
    out = clips[0].new_zeros((len(clips), longest) + tuple(clips[0].shape[1:]))
    for row, c in zip(out, clips):
        row[:len(c)] = c
    return out
