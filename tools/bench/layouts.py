"""The storage layouts the data section compares, each as a config of the shared pipeline: the
source layouts of the config's data (synthetic: video with every backend, and frames), and the
stores written into a temporary folder from the same clips (precomputed fd/avg JPEGs, packed at
the decoded size and at the input size). :func:`layout_splits` builds every layout's datasets with
:func:`datasets.build_datasets`, so openers, sampling, crops and planes are the library's."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from yacs.config import CfgNode

from datasets import DataSplits, build_datasets, request_frames
from datasets.packed import PackedWriter
from models.ifns import IFNSEncoder
from tools.bench.common import bench_config
from tools.pack_dataset import decode_gray
from utils.misc import PIXEL_MAX

logger = logging.getLogger(__name__)

PRECOMPUTED_JPEG_QUALITY = 95
PLANE_CHUNK = 32  # sampled frames whose windows are turned into planes at once
VIDEO_BACKENDS = {"video": "auto", "video_opencv": "opencv", "video_luma": "luma"}  # layout -> DATA.VIDEO_BACKEND
FD_PLANE, AVG_PLANE = 1, 2  # fd(t) and avg(t) among the encoder's planes fd(t-1), fd(t), avg(t)

Overrides = dict[str, object]  # DATA key -> value


def source_layouts(cfg: CfgNode) -> dict[str, Overrides]:
    """The layouts the config's data has, as ``DATA`` overrides: synthetic data has videos (three
    backends) and frame folders; a video root every backend; other data only its own layout.

    Args:
        cfg: the benchmark's data config (:func:`~tools.bench.common.bench_config`).
    """
    video = {name: {"LAYOUT": "video", "VIDEO_BACKEND": backend} for name, backend in VIDEO_BACKENDS.items()}
    if not cfg.DATA.ROOT and cfg.DATA.SYNTHETIC.ENABLED:
        layouts: dict[str, Overrides] = {**video, "frames": {"LAYOUT": "frames"}}
    elif cfg.DATA.LAYOUT == "video":
        layouts = video
    else:
        layouts = {cfg.DATA.LAYOUT: {"LAYOUT": cfg.DATA.LAYOUT}}
    return layouts


def write_split_lists(train: list[str], val: list[str], folder: Path) -> Overrides:
    """Writes the chosen clips as split lists (so every layout's datasets hold exactly these).

    Args:
        train: training clip names.
        val: validation clip names.
        folder: where to write ``train.txt`` and ``val.txt``.

    Returns:
        The ``DATA.TRAIN_FILE`` / ``DATA.VAL_FILE`` overrides.
    """
    files = {"TRAIN_FILE": folder / "train.txt", "VAL_FILE": folder / "val.txt"}
    for (key, path), names in zip(files.items(), (train, val)):
        path.write_text("".join(f"{name}\n" for name in names))
    return {key: str(path) for key, path in files.items()}


def write_precomputed(splits: DataSplits, encoder: IFNSEncoder, out: Path) -> Overrides:
    """Writes the precomputed layout of the original release (``out/fd/<name>/<i>.jpg`` = fd(i),
    ``out/avg/<name>/<i>.jpg`` = avg(i)) of every clip of ``splits``, the planes computed by the
    IFNS encoder on the windows of every frame.

    Args:
        splits: the source layout's datasets (their opener and names).
        encoder: the configured IFNS encoder (stride, window offsets).
        out: the layout's folder.

    Returns:
        The ``DATA`` overrides that read it.
    """
    opener = splits.train.opener
    for name in splits.train.names + splits.val.names:
        clip = opener(name)
        count = clip.num_frames
        folders = {plane: out / plane / name for plane in ("fd", "avg")}
        for folder in folders.values():
            folder.mkdir(parents=True)
        for start in range(0, count, PLANE_CHUNK):
            frame_ids, positions = request_frames(np.arange(start, min(start + PLANE_CHUNK, count)),
                                                  encoder.request.offsets, count)  # [U], [N, F]
            gray = clip.read(frame_ids, gray=True)  # [U, H, W]
            windows = torch.from_numpy(gray[positions])[None, :, :, None]  # [1, N, F, 1, H, W]
            with torch.no_grad():
                planes = encoder.planes(windows)[0].round().clamp(0, PIXEL_MAX).to(torch.uint8).numpy()  # [N, 3, H, W]
            for offset, image in enumerate(planes):
                for plane, index in (("fd", FD_PLANE), ("avg", AVG_PLANE)):
                    cv2.imwrite(str(folders[plane] / f"{start + offset}.jpg"), image[index],
                                [cv2.IMWRITE_JPEG_QUALITY, PRECOMPUTED_JPEG_QUALITY])
    return {"LAYOUT": "precomputed", "FD_ROOT": str(out / "fd"), "AVG_ROOT": str(out / "avg")}


def write_packed(splits: DataSplits, out: Path, short_side: int = 0) -> Overrides:
    """Writes a packed store of every clip of ``splits`` (as tools/pack_dataset.py does, with its
    ``--short-side``; 0 = the decoded size).

    Args:
        splits: the source layout's datasets.
        out: the store folder.
        short_side: resize the frames to this short side first.

    Returns:
        The ``DATA`` overrides that read it.
    """
    with PackedWriter(out) as writer:
        for name in splits.train.names + splits.val.names:
            writer.add(name, decode_gray(splits.train.opener(name), short_side))
    return {"LAYOUT": "packed", "PACKED_ROOT": str(out)}


def layout_config(cfg: CfgNode, overrides: Overrides, crop_on_device: bool = False) -> CfgNode:
    """The benchmark's data config of one layout: one test view per clip (centre crop, centre
    frames), ``DATA.CROP_ON_DEVICE`` as given.

    Args:
        cfg: the experiment config.
        overrides: the layout's ``DATA`` keys (and the split lists).
        crop_on_device: uncropped items for the device crop.
    """
    cfg = bench_config(cfg, CROP_ON_DEVICE=crop_on_device, **overrides)
    cfg.defrost()
    cfg.TEST.NUM_CLIP = 1
    cfg.TEST.NUM_CROP = 1
    cfg.freeze()
    return cfg


def layout_splits(cfg: CfgNode, overrides: Overrides, crop_on_device: bool = False) -> DataSplits:
    """The datasets of one layout (see :func:`layout_config`), built by :func:`datasets.build_datasets`."""
    return build_datasets(layout_config(cfg, overrides, crop_on_device))
