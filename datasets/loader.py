"""Builds the datasets, samplers and data loaders from the config (single process and DDP).

Layouts (``DATA.LAYOUT``): ``video`` (``DATA.ROOT/<name>DATA.VIDEO_EXT``), ``frames``
(``DATA.ROOT/<name>/*.jpg``), ``precomputed`` (``DATA.FD_ROOT/<name>/<i>.jpg`` and
``DATA.AVG_ROOT/<name>/<i>.jpg``) and ``packed`` (``DATA.PACKED_ROOT``, gray frames in
memory-mapped shards, see :mod:`datasets.packed`). Sample names are the NTU- or P3AR-PKU-named
entries under the root, or the split lists when given. With ``DATA.ROOT == ""`` and
``DATA.SYNTHETIC.ENABLED`` the synthetic set (LPS-NTU, or P3AR-PKU for ``DATA.DATASET pku``) is
generated once into the cache and read.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from yacs.config import CfgNode

from datasets.dataset import ClipCollate, ClipDataset, ClipOpener, Restoration
from datasets.items import ItemBuilder
from datasets.names import is_sample_name, load_class_names, parse_name, split_names
from datasets.packed import PackedClip, PackedStore
from datasets.readers import FrameFolderClip, PrecomputedClip
from datasets.sampling import FrameSampler
from datasets.spp import build_spp
from datasets.video import LumaLevels, VideoClip
from models import FrameRequest, build_input_encoder
from utils.paths import resolve_path
from utils.errors import UserError

logger = logging.getLogger(__name__)

LAYOUTS = ("video", "frames", "precomputed", "packed")  # DATA.LAYOUT choices
RGB_LAYOUTS = ("video", "frames")  # the layouts that hold the camera's RGB frames
SYNTHETIC_FOLDERS = {"frames": "frames", "video": "videos"}
SYNTHETIC_VIDEO_EXT = ".mp4"


class TrainSampler(Sampler):
    """Shuffles per epoch (from ``seed`` and the epoch only) and shards over ranks.

    Every rank gets ``num_samples // world_size`` items (the tail of the permutation is dropped).
    Yields ``(index, epoch)`` keys, so the dataset draws the sample's randomness from them.

    Args:
        num_samples: dataset size.
        rank: this process's rank.
        world_size: number of ranks.
        seed: base seed (``cfg.SEED``).
    """

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1, seed: int = 0) -> None:
        self.num_samples = num_samples
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the permutation (and the augmentation draws) of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples // self.world_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        order = order[:len(self) * self.world_size]  # equal counts on all ranks: drop the tail
        for index in order[self.rank::self.world_size].tolist():
            yield index, self.epoch


class EvalSampler(Sampler):
    """Contiguous shards in order: every sample goes to exactly one rank, no padding.

    Args:
        num_samples: dataset size.
        rank: this process's rank.
        world_size: number of ranks.
    """

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1) -> None:
        self.start = num_samples * rank // world_size
        self.stop = num_samples * (rank + 1) // world_size

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))


@dataclass
class Loaders:
    """What the trainer needs from the data.

    Args:
        train: training loader (batches of ``frames`` uint8 [B, T, F, C, S, S] for the input
            encoder, ``label``, ``identity``, ``index``, ``num_bad``; with ``DATA.CROP_ON_DEVICE``
            uncropped frames: :func:`~datasets.device.to_device` finishes every batch).
        val: evaluation loader (``frames`` [B, V, T, F, C, S, S], ...).
        train_sampler: call ``set_epoch(epoch)`` before each epoch.
        val_sampler: this rank's shard of the validation set.
        class_names: the K action names.
        train_labels: privacy head -> its labels present in training (closed-set accuracy).
        num_train: training videos (all ranks).
        num_val: validation videos (all ranks).
    """

    train: DataLoader
    val: DataLoader
    train_sampler: TrainSampler
    val_sampler: EvalSampler
    class_names: list[str]
    train_labels: dict[str, set[int]]
    num_train: int
    num_val: int


@dataclass
class DataSplits:
    """The datasets of one config, before loaders.

    Args:
        train: training dataset.
        val: validation dataset.
        class_names: the K action names.
        root: the folder the samples were read from (the synthetic source copy when synthetic).
        synthetic_root: the synthetic set (``<root>/{raw,lps}/...``) or None.
    """

    train: ClipDataset
    val: ClipDataset
    class_names: list[str]
    root: Path
    synthetic_root: Path | None


def _list_entries(root: Path, layout: str, video_ext: str) -> dict[str, Path]:
    """Canonical NTU name -> path of the entries under ``root`` (other entries are ignored)."""
    found: dict[str, Path] = {}
    ignored = 0
    for entry in sorted(root.iterdir()):
        wanted = entry.is_file() and entry.name.endswith(video_ext) if layout == "video" else entry.is_dir()
        if wanted and is_sample_name(entry.name):
            found[parse_name(entry.name).name] = entry
        else:
            ignored += 1
    if ignored:
        logger.info("ignored %d entries of %s that are not sample-named %s", ignored, root,
                    "videos" if layout == "video" else "folders")
    return found


def _open_sample(name: str, *, layout: str, paths: dict[str, Path], root: Path, video_ext: str,
                 avg_root: Path | None, store: PackedStore | None, video_backend: str,
                 luma_levels: LumaLevels):
    path = paths.get(name, root / (name + video_ext if layout == "video" else name))
    if store is not None:
        return PackedClip(store, path.name)
    if layout == "video":
        return VideoClip(path, name, backend=video_backend, luma_levels=luma_levels)
    if layout == "precomputed":
        return PrecomputedClip(path, avg_root / path.name, name)
    return FrameFolderClip(path, name)


def _resolve_root(cfg: CfgNode) -> tuple[Path, Path | None, str]:
    """(root of the samples, synthetic set or None, video extension)."""
    data = cfg.DATA
    if data.LAYOUT == "packed":
        if not data.PACKED_ROOT or not Path(resolve_path(data.PACKED_ROOT)).is_dir():
            raise UserError(f"DATA.PACKED_ROOT = {data.PACKED_ROOT!r} is not a folder; set it to a "
                            "store written by tools/pack_dataset.py for DATA.LAYOUT packed")
        return Path(resolve_path(data.PACKED_ROOT)), None, data.VIDEO_EXT
    if data.LAYOUT == "precomputed":
        for key, value in (("DATA.FD_ROOT", data.FD_ROOT), ("DATA.AVG_ROOT", data.AVG_ROOT)):
            if not value or not Path(resolve_path(value)).is_dir():
                raise UserError(f"{key} = {value!r} is not a folder; set it for DATA.LAYOUT precomputed")
        return Path(resolve_path(data.FD_ROOT)), None, data.VIDEO_EXT
    if data.ROOT == "":
        if not data.SYNTHETIC.ENABLED:
            raise UserError("DATA.ROOT is empty; set it to the data folder or set "
                            "DATA.SYNTHETIC.ENABLED True")
        from datasets.synthetic import ensure_synthetic

        synthetic = Path(ensure_synthetic(cfg))
        root = synthetic / data.SYNTHETIC.SOURCE / SYNTHETIC_FOLDERS[data.LAYOUT]
        return root, synthetic, SYNTHETIC_VIDEO_EXT
    root = Path(resolve_path(data.ROOT))
    if not root.is_dir():
        raise UserError(f"DATA.ROOT {data.ROOT} is not a folder; set DATA.ROOT to the data folder")
    return root, None, data.VIDEO_EXT


def _check_labels(names: list[str], num_classes: int, heads: dict[str, int], part: str) -> None:
    """Every action and privacy label of ``names`` fits the configured class counts."""
    for name in names:
        parsed = parse_name(name)
        if parsed.label >= num_classes:
            raise UserError(f"{part} sample {name} has action {parsed.action} > DATA.NUM_CLASSES = "
                            f"{num_classes}; raise DATA.NUM_CLASSES or filter the data")
        labels = parsed.privacy_labels
        for head, classes in heads.items():
            if head not in labels:
                raise UserError(f"{part} sample {name} has no {head} label for MODEL.PRIVACY_HEADS; its "
                                f"names carry {', '.join(labels)}")
            if labels[head] >= classes:
                raise UserError(f"{part} sample {name} has {head} {labels[head] + 1} > its MODEL.PRIVACY_CLASSES "
                                f"entry {classes}; raise it")


def build_datasets(cfg: CfgNode, request: FrameRequest | None = None, restoration: Restoration | None = None,
                   crop_on_device: bool | None = None) -> DataSplits:
    """Finds the samples, splits them by the benchmark (or the split lists) and builds datasets:
    how the trainer and every tool get data.

    Args:
        cfg: the experiment config.
        request: the frames the items hold; None = those of the configured input encoder
            (``MODEL.ENCODER``, :func:`models.build_input_encoder`).
        restoration: reconstruct the degraded frames first (attacks), or None.
        crop_on_device: uncropped items for the device crop; None = ``DATA.CROP_ON_DEVICE``.

    Raises:
        UserError: a missing data folder, split list or label file, or labels beyond the config.
    """
    data = cfg.DATA
    request = request or build_input_encoder(cfg).request
    crop_on_device = data.CROP_ON_DEVICE if crop_on_device is None else crop_on_device
    root, synthetic, video_ext = _resolve_root(cfg)
    if not root.is_dir():
        raise UserError(f"data folder {root} not found; check DATA.ROOT and DATA.LAYOUT")
    store = PackedStore(root) if data.LAYOUT == "packed" else None
    if store is not None:
        if cfg.LPS.LEVEL > 0 or cfg.SPP.ENABLED or restoration is not None or not request.gray:
            raise UserError("a packed store holds gray frames, but LPS.LEVEL > 0, SPP.ENABLED, a restoration or "
                            f"MODEL.ENCODER {cfg.MODEL.ENCODER} needs RGB frames; use DATA.LAYOUT "
                            "video or frames")
        paths = {parse_name(name).name: root / name for name in store.samples}
    else:
        paths = _list_entries(root, data.LAYOUT, video_ext)
    train_names, val_names = split_names(
        paths, data.DATASET, data.BENCHMARK, resolve_path(data.TRAIN_FILE), resolve_path(data.VAL_FILE))
    if not train_names or not val_names:
        raise UserError(f"{root}: {len(train_names)} training and {len(val_names)} validation samples "
                        f"for {data.DATASET} {data.BENCHMARK}; check DATA.ROOT and the split lists")
    heads = dict(zip(cfg.MODEL.PRIVACY_HEADS, cfg.MODEL.PRIVACY_CLASSES))
    _check_labels(train_names, data.NUM_CLASSES, heads, "training")
    _check_labels(val_names, data.NUM_CLASSES, heads, "validation")
    avg_root = Path(resolve_path(data.AVG_ROOT)) if data.LAYOUT == "precomputed" else None
    opener: ClipOpener = partial(_open_sample, layout=data.LAYOUT, paths=paths, root=root,
                                 video_ext=video_ext, avg_root=avg_root, store=store,
                                 video_backend=data.VIDEO_BACKEND, luma_levels=LumaLevels())
    aug = cfg.AUG
    train_builder = ItemBuilder(request, data.INPUT_SIZE, train=True, scales=tuple(aug.SCALES), flip=aug.FLIP,
                                color_jitter=aug.COLOR_JITTER, gray_scale=aug.GRAY_SCALE,
                                crop_on_device=crop_on_device)
    val_builder = ItemBuilder(request, data.INPUT_SIZE, train=False, num_crop=cfg.TEST.NUM_CROP,
                              crop_on_device=crop_on_device)
    common = dict(opener=opener, seed=cfg.SEED, lps_level=cfg.LPS.LEVEL, lps_device=cfg.LPS.DEVICE,
                  restoration=restoration, skip_bad=data.SKIP_BAD, spp=build_spp(cfg))
    train = ClipDataset(names=train_names, sampler=FrameSampler(data.NUM_FRAMES, train=True),
                        builder=train_builder, **common)
    val = ClipDataset(names=val_names, sampler=FrameSampler(data.NUM_FRAMES, train=False, num_clip=cfg.TEST.NUM_CLIP),
                      builder=val_builder, **common)
    class_names = load_class_names(resolve_path(data.LABEL_LIST), data.NUM_CLASSES)
    return DataSplits(train, val, class_names, root, synthetic)


def collate_for(dataset: ClipDataset) -> ClipCollate:
    """The collate function of ``dataset``'s items."""
    builder = dataset.builder
    return ClipCollate(dataset.fields, dataset.scalar_keys, builder.input_size if builder.crop_on_device else 0)


def worker_init(worker_id: int) -> None:
    """Workers decode single-threaded (the sample's randomness does not depend on the worker).
    OpenCV is already single-threaded when the parent went through :func:`worker_options`;
    reconfiguring the thread pool a worker inherited would wait forever on the condition variables
    of the parent's pool threads, which the fork did not copy."""
    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)
    torch.set_num_threads(1)


def worker_options(num_workers: int, persistent: bool = True) -> dict:
    """The DataLoader arguments of ``num_workers`` single-threaded worker processes.

    With workers, the calling process first makes OpenCV single-threaded: OpenCV's thread pool does
    not survive a fork once it has run (a worker that touches the inherited pool hangs in
    ``pthread_cond_destroy``; ``tests/test_loader.py`` reproduces it), and the decoding happens in
    the workers anyway.

    Args:
        num_workers: worker processes (0 = load in the calling process).
        persistent: keep the workers between epochs.
    """
    if num_workers > 0:
        cv2.setNumThreads(1)
    return dict(num_workers=num_workers, persistent_workers=persistent and num_workers > 0,
                worker_init_fn=worker_init if num_workers > 0 else None)


def build_loaders(cfg: CfgNode, rank: int = 0, world_size: int = 1) -> Loaders:
    """Builds the train and validation loaders of ``cfg`` for ``rank`` of ``world_size``.

    Args:
        cfg: the experiment config.
        rank: this process's rank.
        world_size: number of ranks.

    Raises:
        UserError: see :func:`build_datasets`; also a training set smaller than one batch per rank.
    """
    splits = build_datasets(cfg)
    data = cfg.DATA
    train_sampler = TrainSampler(len(splits.train), rank, world_size, cfg.SEED)
    val_sampler = EvalSampler(len(splits.val), rank, world_size)
    if len(train_sampler) < cfg.TRAIN.BATCH_SIZE:
        raise UserError(f"{len(splits.train)} training samples give {len(train_sampler)} per rank, "
                        f"fewer than TRAIN.BATCH_SIZE = {cfg.TRAIN.BATCH_SIZE}; lower the batch size")
    workers = data.NUM_WORKERS
    common = dict(**worker_options(workers), pin_memory=data.PIN_MEMORY and torch.cuda.is_available())
    train = DataLoader(splits.train, batch_size=cfg.TRAIN.BATCH_SIZE, sampler=train_sampler,
                       drop_last=True, collate_fn=collate_for(splits.train), **common)
    val = DataLoader(splits.val, batch_size=cfg.TEST.BATCH_SIZE, sampler=val_sampler,
                     drop_last=False, collate_fn=collate_for(splits.val), **common)
    train_labels = {head: {labels[head] for labels in splits.train.privacy_labels} for head in cfg.MODEL.PRIVACY_HEADS}
    logger.info("data: %d train / %d val videos from %s, %d classes, %s", len(splits.train), len(splits.val),
                splits.root, len(splits.class_names),
                ", ".join(f"{len(values)} train {head} labels" for head, values in train_labels.items()))
    return Loaders(train, val, train_sampler, val_sampler, splits.class_names, train_labels,
                   len(splits.train), len(splits.val))
