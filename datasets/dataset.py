"""The clip dataset, built from parts: a source (opener), the temporal sampler, the source
wrappers (film simulation, Selective Privacy Preservation, restoration) and the item builder.

Every random draw of a sample (frames, film noise, crop, flip, jitter, gray-scale) comes from a
generator seeded with (seed, epoch, index), so a sample is the same whatever the worker, the
number of workers or ranks, or a resume. The train sampler passes ``(index, epoch)`` keys for this.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.items import Fields, ItemBuilder
from datasets.names import parse_name
from datasets.readers import Clip, DataError, PrecomputedClip
from datasets.sampling import FrameSampler
from datasets.spp import SelectiveObfuscation, SPPClip
from datasets.wrappers import FilmClip, RestoredClip
from utils.errors import UserError

logger = logging.getLogger(__name__)

MAX_SKIPS = 16  # training: consecutive unreadable samples tolerated before giving up
SEED_BITS = 63
LABEL_KEYS = ("label", "camera", "index")  # integer fields of every item, collated as int64 [B]

ClipOpener = Callable[[str], Union[Clip, PrecomputedClip]]


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` in ``epoch`` (a pure function of the three numbers)."""
    return np.random.default_rng([seed, epoch, index])


@dataclass(frozen=True)
class Restoration:
    """An adversary's reconstruction applied to every clip (see :class:`~datasets.wrappers.RestoredClip`).

    Args:
        method: wiener | richardson_lucy | learned.
        level: film layers the frames went through.
        nsr: Wiener noise-to-signal ratio.
        iterations: Richardson-Lucy iterations.
        restorer: checkpoint of the learned restorer (a path, so the dataset stays picklable).
        camera: the privacy camera the frames came from (``LPS.DEVICE``; admm_tv inverts the
            lensless and coded-aperture ones).
    """

    method: str
    level: int
    nsr: float
    iterations: int
    restorer: str = ""
    camera: str = "film"


class ClipDataset(Dataset):
    """Named clips (NTU or P3AR-PKU) as items of uint8 frames for an input encoder (:mod:`datasets.items`).

    Items: the :class:`~datasets.items.ItemBuilder` fields (``frames`` ...) plus the integers
    ``label`` (action), ``camera``, one per privacy label of the names (``identity``; on P3AR-PKU
    also ``gender``, ``hairstyle``, ``glasses``, ``upper``, ``lower``), ``index`` and ``num_bad``
    (unreadable samples skipped to produce this item).

    Args:
        names: canonical sample names.
        opener: opens a sample by name (the source of the layout).
        sampler: the temporal sampler.
        builder: the item builder.
        seed: base seed of every random draw.
        lps_level: on-the-fly privacy-camera simulation level (0 = off).
        lps_device: the simulated camera: film | lensless | coded_aperture.
        restoration: reconstruct the (degraded) frames first, or None.
        spp: Selective Privacy Preservation of the (filmed) frames before any restoration, or None.
        skip_bad: skip unreadable samples (train: the next sample replaces it; test: the item
            is None and the collate drops it) instead of raising.
    """

    def __init__(self, *, names: list[str], opener: ClipOpener, sampler: FrameSampler, builder: ItemBuilder,
                 seed: int, lps_level: int = 0, lps_device: str = "film", restoration: Restoration | None = None,
                 skip_bad: bool = False, spp: SelectiveObfuscation | None = None) -> None:
        if (lps_level or restoration or spp) and builder.request.planes:
            raise UserError("LPS.LEVEL, SPP and restoration need RGB frames, but the precomputed layout "
                            "holds IFNS planes: set LPS.LEVEL 0 or use a layout with frames")
        self.names = list(names)
        parsed = [parse_name(n) for n in self.names]
        self.labels = [p.label for p in parsed]
        self.cameras = [p.camera for p in parsed]
        self.privacy_labels = [p.privacy_labels for p in parsed]
        self.opener = opener
        self.sampler = sampler
        self.builder = builder
        self.seed = seed
        self.lps_level = lps_level
        self.lps_device = lps_device
        self.restoration = restoration
        self.spp = spp
        self.skip_bad = skip_bad

    @property
    def train(self) -> bool:
        """Random sampling and augmentation (else the deterministic test views)."""
        return self.sampler.train

    @property
    def num_views(self) -> int:
        """Views per test item (1 in training)."""
        return 1 if self.train else self.sampler.num_views * self.builder.num_crop

    @property
    def identities(self) -> list[int]:
        """The identity label of every sample."""
        return [labels["identity"] for labels in self.privacy_labels]

    @property
    def scalar_keys(self) -> tuple[str, ...]:
        """The integer fields of the items: :data:`LABEL_KEYS` and the names' privacy labels."""
        return LABEL_KEYS + tuple(self.privacy_labels[0] if self.privacy_labels else ())

    @property
    def fields(self) -> Fields:
        """Shapes and dtypes of the items' arrays (for an all-skipped, empty batch)."""
        return self.builder.fields(self.num_views)

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
            item.update(label=self.labels[current], camera=self.cameras[current], **self.privacy_labels[current],
                        index=current, num_bad=skipped)
            return item
        raise DataError(f"{MAX_SKIPS} consecutive samples from {self.names[index]} are unreadable; "
                        "check the data folder")

    def wrap(self, clip: Clip | PrecomputedClip, rng: np.random.Generator | None) -> Clip | PrecomputedClip:
        """An opened sample wrapped in the film simulation, SPP and the restoration (when set); the
        film's and SPP's noise seeds are drawn from the sample's generator."""
        if self.lps_level:
            generator = torch.Generator().manual_seed(int(rng.integers(2 ** SEED_BITS)))
            clip = FilmClip(clip, self.lps_level, generator, self.lps_device)
        if self.spp is not None:
            clip = SPPClip(clip, self.spp, int(rng.integers(2 ** SEED_BITS)))
        if self.restoration is not None:
            r = self.restoration
            clip = RestoredClip(clip, r.method, r.level, r.nsr, r.iterations, r.restorer, r.camera)
        return clip

    def load_item(self, index: int, epoch: int = 0) -> dict[str, np.ndarray]:
        """The array fields of item ``index`` (see the class docstring).

        Raises:
            DataError: a missing or corrupt file of the sample.
        """
        # a test item draws nothing unless film or SPP noise is made: its generator is not even made
        rng = sample_rng(self.seed, epoch, index) if self.train or self.lps_level or self.spp else None
        clip = self.opener(self.names[index])
        indices = self.sampler(clip.num_frames, rng)  # [C, T]
        return self.builder(self.wrap(clip, rng), indices, rng, self.names[index])


@dataclass(frozen=True)
class ClipCollate:
    """Stacks items into a batch, dropping None items (skipped test samples).

    Batch: the items' arrays stacked (``frames`` [B, ...]; uncropped ``crop_on_device`` frames
    [U, H, W] zero-padded to the batch's largest U, with ``size`` the output side as an int64
    scalar), the integer fields (``label``, ``camera``, ``identity`` ..., ``index``) int64 [B] and
    ``num_bad`` int64 scalar (unreadable samples skipped for this batch).

    Args:
        fields: the items' array shapes and dtypes (:attr:`ClipDataset.fields`), used for an
            all-skipped, empty batch.
        scalars: the items' integer fields (:attr:`ClipDataset.scalar_keys`).
        crop_size: the output side of ``crop_on_device`` items (0 = the items are cropped).
    """

    fields: Fields
    scalars: tuple[str, ...] = LABEL_KEYS + ("identity",)
    crop_size: int = 0

    def __call__(self, items: list[dict | None]) -> dict[str, torch.Tensor]:
        kept = [item for item in items if item is not None]
        num_bad = len(items) - len(kept) + sum(item["num_bad"] for item in kept)
        if not kept:
            batch = {key: torch.empty((0,) + shape, dtype=dtype) for key, (shape, dtype) in self.fields.items()}
        else:
            batch = {key: _stack_padded([item[key] for item in kept])
                     for key in kept[0] if key not in self.scalars and key != "num_bad"}
        for key in self.scalars:
            batch[key] = torch.tensor([item[key] for item in kept], dtype=torch.long)
        batch["num_bad"] = torch.tensor(num_bad, dtype=torch.long)
        if self.crop_size:
            batch["size"] = torch.tensor(self.crop_size, dtype=torch.long)
        return batch


def _stack_padded(arrays: list[torch.Tensor]) -> torch.Tensor:
    """Stacks tensors that may differ in their first dimension (frame counts), zero-padding it.

    Args:
        arrays: the items' tensors ``[N_i, ...]``, equal beyond the first dimension.

    Raises:
        UserError: the other dimensions differ (frames of different sizes in one batch).
    """
    shapes = {tuple(a.shape[1:]) for a in arrays}
    if len(shapes) > 1:
        raise UserError(f"a batch holds frames of sizes {sorted(shapes)}; DATA.CROP_ON_DEVICE batches "
                        "frames of one size: store the frames at one size (tools/pack_dataset.py "
                        "--short-side) or set DATA.CROP_ON_DEVICE False")
    longest = max(len(a) for a in arrays)
    if all(len(a) == longest for a in arrays):
        return torch.stack(arrays)
    out = arrays[0].new_zeros((len(arrays), longest) + tuple(arrays[0].shape[1:]))
    for row, a in zip(out, arrays):
        row[:len(a)] = a
    return out
