"""(clean, sealed) frame pairs for the learned reconstruction attack (tools/train_restorer.py).

The adversary owns a copy of the film: it records people of its own through it, so it has the
clean frames and the sealed ones of the same scenes. The pairs are the clean RGB frames of the
config's data (the synthetic set's raw copy, or the clean videos / frame folders of
``DATA.ROOT``) and the same frames degraded by the film simulation at a chosen level
(:func:`datasets.lps.simulate_lps`, as :class:`datasets.wrappers.FilmClip` applies it on the fly),
on the whole recorded frame, at the source's resolution: the scale at which
:class:`~datasets.wrappers.RestoredClip` later restores sealed frames.

Every draw of a pair (its frames, film level, sensor noise, patch, flip) comes from a generator
seeded with (seed, epoch, index), so a pair is the same whatever the worker or a resume.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from yacs.config import CfgNode

from datasets.dataset import SEED_BITS, ClipOpener
from datasets.loader import RGB_LAYOUTS, build_datasets
from datasets.lps import simulate_lps
from datasets.readers import DataError
from datasets.sampling import FrameSampler
from models.encoders import RGBEncoder
from utils.errors import UserError

logger = logging.getLogger(__name__)

PAIR_STREAM = 7  # a fourth seed word, so pair draws differ from the clip dataset's (seed, epoch, index)


class FramePairs(Dataset):
    """Frames of named clips, clean and through the film.

    Items: ``clean`` and ``sealed`` uint8 ``[N, 3, h, w]`` (N = the sampler's frames), ``level``
    (the film layers of ``sealed``) and ``index``; None for an unreadable sample under
    ``skip_bad``.

    Args:
        names: sample names.
        opener: opens a sample by name (the clean source, :func:`datasets.build_datasets`).
        sampler: the frames of a clip (random per segment in training, the segment centres else).
        levels: film levels; each item draws one (the same for all its frames).
        seed: base seed of every draw.
        patch: side of a random square crop taken at the same place in both frames (0 = whole
            frames).
        flip: random horizontal flip of both frames.
        skip_bad: an unreadable sample gives None (dropped by :func:`collate_pairs`) instead of raising.
    """

    def __init__(self, *, names: list[str], opener: ClipOpener, sampler: FrameSampler, levels: tuple[int, ...],
                 seed: int, patch: int = 0, flip: bool = False, skip_bad: bool = False) -> None:
        if not levels or min(levels) < 1:
            raise UserError(f"film levels must be 1, 2 or 3, got {list(levels)}")
        self.names = list(names)
        self.opener = opener
        self.sampler = sampler
        self.levels = tuple(levels)
        self.seed = seed
        self.patch = patch
        self.flip = flip
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, key: int | tuple[int, int]) -> dict | None:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        rng = np.random.default_rng([self.seed, epoch, index, PAIR_STREAM])
        try:
            clip = self.opener(self.names[index])
            indices = self.sampler(clip.num_frames, rng).reshape(-1)
            rgb = clip.read(indices, gray=False)  # [N, H, W, 3]
        except DataError as exc:
            if not self.skip_bad:
                raise
            logger.warning("skipping unreadable sample: %s", exc)
            return None
        clean = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).contiguous()  # [N, 3, H, W]
        level = self.levels[int(rng.integers(len(self.levels)))]
        generator = torch.Generator().manual_seed(int(rng.integers(2 ** SEED_BITS)))
        sealed = simulate_lps(clean, level, generator)
        if self.patch:
            h, w = clean.shape[-2:]
            if min(h, w) < self.patch:
                raise UserError(f"--patch {self.patch} is larger than the {h}x{w} frames of "
                                f"{self.names[index]}; lower it")
            top, left = int(rng.integers(h - self.patch + 1)), int(rng.integers(w - self.patch + 1))
            clean, sealed = (t[..., top:top + self.patch, left:left + self.patch] for t in (clean, sealed))
        if self.flip and rng.random() < 0.5:
            clean, sealed = clean.flip(-1), sealed.flip(-1)
        return {"clean": clean.contiguous(), "sealed": sealed.contiguous(), "level": level, "index": index}


def collate_pairs(items: list[dict | None]) -> dict[str, torch.Tensor]:
    """Concatenates the items' frames (None items dropped).

    Returns:
        ``clean`` and ``sealed`` uint8 ``[M, 3, h, w]`` (M = all frames of the batch), ``level`` and
        ``video`` (the item's ``index``) int64 ``[M]``.

    Raises:
        UserError: frames of different sizes in one batch.
    """
    kept = [item for item in items if item is not None]
    if not kept:
        empty = torch.empty(0, 3, 0, 0, dtype=torch.uint8)
        return {"clean": empty, "sealed": empty, "level": torch.empty(0, dtype=torch.long),
                "video": torch.empty(0, dtype=torch.long)}
    sizes = {tuple(item["clean"].shape[-2:]) for item in kept}
    if len(sizes) > 1:
        raise UserError(f"a batch holds frames of sizes {sorted(sizes)}; train on patches (--patch) "
                        "or evaluate with --eval-batch-size 1")
    counts = [len(item["clean"]) for item in kept]
    return {"clean": torch.cat([item["clean"] for item in kept]),
            "sealed": torch.cat([item["sealed"] for item in kept]),
            "level": torch.tensor([item["level"] for item in kept]).repeat_interleave(torch.tensor(counts)),
            "video": torch.tensor([item["index"] for item in kept]).repeat_interleave(torch.tensor(counts))}


def spread(names: list[str], count: int) -> list[str]:
    """At most ``count`` of ``names``, evenly spaced over the list (0 = all)."""
    if not count or count >= len(names):
        return list(names)
    return [names[i] for i in np.linspace(0, len(names) - 1, count).round().astype(int)]


@dataclass
class PairData:
    """The restorer's data: training pairs and held-out pairs per film level.

    Args:
        train: pairs of the benchmark's training videos (random frames, patches, flips).
        val: per level, pairs of the held-out (validation) videos at that level (the segment centres).
        root: the folder the clean frames were read from.
    """

    train: FramePairs
    val: dict[int, FramePairs]
    root: Path


def clean_config(cfg: CfgNode) -> CfgNode:
    """``cfg`` reading clean frames: the synthetic set's raw copy, no on-the-fly camera, no SPP."""
    out = cfg.clone()
    out.defrost()
    out.DATA.SYNTHETIC.SOURCE = "raw"
    out.LPS.LEVEL = 0
    out.SPP.ENABLED = False
    out.freeze()
    return out


def build_pairs(cfg: CfgNode, *, levels: tuple[int, ...], frames: int, patch: int = 0, max_train: int = 0,
                max_val: int = 0) -> PairData:
    """The restorer's pairs from the config's data, split by the action benchmark.

    The restorer trains on the benchmark's training videos and is measured on its validation
    videos: under a cross-subject benchmark other people than the victims, under cross-setup the
    same people filmed in other setups.

    Args:
        cfg: the experiment config (the synthetic set is read from its raw copy; ``DATA.ROOT`` must
            hold clean frames).
        levels: the film levels of the training pairs (and of the held-out measurement).
        frames: frames per video and item.
        patch: side of the training crops (0 = whole frames).
        max_train: at most this many training videos, evenly spread (0 = all).
        max_val: at most this many held-out videos (0 = all).

    Raises:
        UserError: a layout without RGB frames, another camera than the film, or see :func:`datasets.build_datasets`.
    """
    if cfg.LPS.DEVICE != "film":
        raise UserError(f"the restorer's pairs simulate the LPS film, not LPS.DEVICE {cfg.LPS.DEVICE}; set "
                        "LPS.DEVICE film")
    if cfg.DATA.LAYOUT not in RGB_LAYOUTS:
        raise UserError(f"the restorer needs the camera's RGB frames, which DATA.LAYOUT {cfg.DATA.LAYOUT} does "
                        "not hold; use the video or frames layout")
    splits = build_datasets(clean_config(cfg), request=RGBEncoder.request, crop_on_device=False)
    opener, skip = splits.train.opener, cfg.DATA.SKIP_BAD
    train = FramePairs(names=spread(splits.train.names, max_train), opener=opener,
                       sampler=FrameSampler(frames, train=True), levels=levels, seed=cfg.SEED, patch=patch,
                       flip=True, skip_bad=skip)
    val_names = spread(splits.val.names, max_val)
    val = {level: FramePairs(names=val_names, opener=opener, sampler=FrameSampler(frames, train=False),
                             levels=(level,), seed=cfg.SEED, skip_bad=skip) for level in levels}
    logger.info("restorer pairs: %d training / %d held-out videos of %s, %d frames each, film levels %s",
                len(train), len(val_names), splits.root, frames, list(levels))
    return PairData(train, val, splits.root)
