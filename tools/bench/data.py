"""The data section: per-worker clips/s of every storage layout on the shared pipeline.

Every layout is a config read by :func:`datasets.build_datasets` (see :mod:`tools.bench.layouts`)
over the same clips: the source layouts (video with the auto, opencv and luma backends, frames),
precomputed fd/avg JPEGs, packed at the decoded size and at the input size (``packed_short``), the
luma video backend with ``DATA.CROP_ON_DEVICE`` (``video_luma_device``) and training items
(``*_train``: the config's multi-scale crop, flip and jitter) of the input-size store and of the
decoded-size store with the crop on the device; plus a plain opencv read of the precomputed JPEGs
(``jpeg_baseline``), the device end of the data path (crop, when on the device, and the input
encoder) on one CPU thread, and the decoding and resizing stages of one clip.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
from yacs.config import CfgNode

from datasets import ClipDataset, DataSplits, collate_for, request_frames, sample_rng, to_device
from datasets.transforms import AREA_SHRINK, crop_resize, eval_crop_boxes
from models import build_input_encoder
from tools.bench.layouts import (VIDEO_BACKENDS, layout_config, layout_splits, source_layouts, write_packed,
                                 write_precomputed, write_split_lists)
from tools.bench.timing import single_thread, time_call
from utils.errors import UserError

logger = logging.getLogger(__name__)

DATA_CLIPS = 8  # clips per data-layout measurement
BASELINES = ("precomputed", "jpeg_baseline")  # layouts the ratios divide by
CPU = torch.device("cpu")


def time_interleaved(loads: dict[str, Callable[[int], Any]], count: int, reps: int) -> dict[str, dict[str, float]]:
    """Per-item time of every ``loads[name](i)`` over ``count`` items: one untimed pass each, then
    ``reps`` rounds in which each loader makes one timed pass (the order rotating every round),
    after one untimed load of its last item: a loader worker runs one layout, so a pass should
    not start with the caches the other layouts of this process left (without that load the
    first item of every pass is cold; measured effect on the layouts' ratios up to 8%, in
    docs/performance.md).

    Args:
        loads: layout -> item loader.
        count: items per pass.
        reps: timed passes per loader.

    Returns:
        Per name: ``ms_per_clip``, the mean over the items of each item's fastest time (a burst of
        load from other jobs or of hypervisor steal slows single calls, which this discards),
        ``clips_per_s`` from it, and ``ms_per_clip_median``, the median pass (load included).
    """
    for load in loads.values():
        for i in range(count):
            load(i)
    order = list(loads)
    times = {name: np.zeros((max(reps, 1), count)) for name in order}  # [reps, count] seconds
    for round_ in range(max(reps, 1)):
        shift = round_ % len(order)
        for name in order[shift:] + order[:shift]:
            loads[name](count - 1)  # this layout's code and buffers warm again, untimed
            for i in range(count):
                start = time.perf_counter()
                loads[name](i)
                times[name][round_, i] = time.perf_counter() - start
    result = {}
    for name, seconds in times.items():
        best = float(seconds.min(axis=0).mean())
        result[name] = {"clips_per_s": 1.0 / best, "ms_per_clip": 1e3 * best,
                        "ms_per_clip_median": 1e3 * float(np.median(seconds.mean(axis=1)))}
    return result


def jpeg_baseline_item(root: Path, name: str, indices: np.ndarray, size: int) -> np.ndarray:
    """A plain opencv read of the 3T precomputed JPEGs of one clip (gray decode), centre square
    crop resized to ``size`` (bilinear, skipped when the crop has the size already): the floor the
    precomputed reader is compared with.

    Args:
        root: the precomputed layout's folder (``fd/`` and ``avg/``).
        name: the clip.
        indices: the sampled frames t ``[T]``.
        size: output side S.

    Returns:
        uint8 ``[T, 3, S, S]``: fd(t-1), fd(t), avg(t).
    """
    files = [root / "fd" / name / f"{int(i)}.jpg" for i in np.clip(indices - 1, 0, None)]
    files += [root / "fd" / name / f"{int(i)}.jpg" for i in indices]
    files += [root / "avg" / name / f"{int(i)}.jpg" for i in indices]
    images = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
    height, width = images[0].shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crops = [im[top:top + side, left:left + side] for im in images]
    if side != size:
        crops = [cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in crops]
    return np.stack(crops).reshape(3, len(indices), size, size).transpose(1, 0, 2, 3)


def view_indices(dataset: ClipDataset, index: int) -> np.ndarray:
    """The sampled frames ``[T]`` of the (single) test view of item ``index``."""
    count = dataset.opener(dataset.names[index]).num_frames
    return dataset.sampler(count, sample_rng(dataset.seed, 0, index))[0]


def encoder_input(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The input encoder's frames of a collated test batch, finished on the CPU by
    :func:`datasets.to_device` (which crops ``crop_on_device`` items): uint8 ``[B * V, T, F, C, S, S]``."""
    return to_device(batch, CPU)["frames"].flatten(0, 1)


def first_batch(dataset: ClipDataset) -> dict[str, torch.Tensor]:
    """Item 0 of a layout's test dataset, collated as its loader does."""
    return collate_for(dataset)([dataset[0]])


def device_step(dataset: ClipDataset, encoder: torch.nn.Module, reps: int) -> dict[str, float]:
    """The device end of the data path for one clip on the CPU: :func:`datasets.to_device` (the
    crop of ``crop_on_device`` items) and the input encoder, on item 0 collated.

    Args:
        dataset: a layout's test dataset.
        encoder: the configured input encoder.
        reps: timed calls (the fastest counts).

    Returns:
        ``device_planes_ms`` and ``item_bytes`` (the uint8 ``frames`` a worker hands over).
    """
    batch = first_batch(dataset)
    with torch.no_grad():
        seconds = time_call(lambda: encoder(encoder_input(batch)), CPU, reps, 1)
    return {"device_planes_ms": 1e3 * min(seconds), "item_bytes": int(batch["frames"][0].numel())}


def planes_difference(device: ClipDataset, worker: ClipDataset, encoder: torch.nn.Module) -> float:
    """Largest difference (gray levels, 0..255 scale) between the encoder's planes of item 0 cropped
    on the device and cropped by the worker (the resize's rounding: float arithmetic there, OpenCV's
    fixed point here).

    Args:
        device: a layout's test dataset with ``crop_on_device``.
        worker: the same layout's test dataset without.
        encoder: the configured IFNS encoder.
    """
    with torch.no_grad():
        planes = [encoder.planes(encoder_input(first_batch(dataset))) for dataset in (device, worker)]
    return float((planes[0] - planes[1]).abs().max())


def bench_stages(frames: np.ndarray, size: int, reps: int) -> dict[str, Any]:
    """Milliseconds per clip of the resizes after decoding, on the uint8 gray frames [U, H, W] of
    one clip (test view: centre crop): the area and bilinear resizes, and the crop-resize the item
    builder uses.

    Args:
        frames: the clip's decoded gray frames.
        size: output side S.
        reps: timed calls (the fastest counts).
    """
    box = eval_crop_boxes(frames.shape[1], frames.shape[2], 1)[0]
    crops = [f[box.top:box.top + box.height, box.left:box.left + box.width] for f in frames]
    stages = {
        "resize_area": lambda: [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops],
        "resize_linear": lambda: [cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in crops],
        "crop_resize": lambda: crop_resize(frames, box, size),
    }
    return {"frames": len(frames),
            "ms_per_clip": {name: 1e3 * min(time_call(fn, CPU, reps, 1)) for name, fn in stages.items()}}


def bench_decode(splits: dict[str, DataSplits], reps: int) -> dict[str, float]:
    """Milliseconds to open one clip and decode the luma frames its test view needs, per video
    backend (before the levels: what ``DATA.CROP_ON_DEVICE`` workers read): the floor of the
    ``video`` layouts before any crop or resize.

    Args:
        splits: layout -> datasets; the ``video``, ``video_opencv`` and ``video_luma`` ones are timed.
        reps: timed calls (the fastest counts).

    Returns:
        ``{"decode_<layout>": ms, "decode_<layout>_frames": frames decoded}``.
    """
    result: dict[str, float] = {}
    for layout in VIDEO_BACKENDS:
        if layout not in splits:
            continue
        dataset = splits[layout].val
        name = dataset.names[0]
        count = dataset.opener(name).num_frames
        frame_ids, _ = request_frames(view_indices(dataset, 0), dataset.builder.request.offsets, count)

        def decode(opener: Callable = dataset.opener, frame_ids: np.ndarray = frame_ids) -> np.ndarray:
            return opener(name).read_luma(frame_ids)[0]

        result[f"decode_{layout}"] = 1e3 * min(time_call(decode, CPU, reps, 1))
        result[f"decode_{layout}_frames"] = len(frame_ids)
    return result


def bench_data(cfg: CfgNode, args: argparse.Namespace) -> dict[str, Any]:
    """Per-worker clips/s of every layout over the same clips, timed interleaved on one thread
    (see the module docstring), the device steps, the stages and the ratios to ``precomputed``.

    Args:
        cfg: the experiment config (``MODEL.ENCODER ifns``: the layouts hold gray frames or planes).
        args: ``data_clips`` and ``reps``.

    Raises:
        UserError: another input encoder.
    """
    if cfg.MODEL.ENCODER != "ifns":
        raise UserError(f"the data benchmark compares the gray layouts of MODEL.ENCODER ifns, not {cfg.MODEL.ENCODER}")
    sources = source_layouts(layout_config(cfg, {}))
    source_name = "frames" if "frames" in sources else next(iter(sources))
    every = layout_splits(cfg, sources[source_name])
    train_names, val_names = every.train.names[:args.data_clips], every.val.names[:args.data_clips]
    count, size = min(len(train_names), len(val_names)), cfg.DATA.INPUT_SIZE
    encoder = build_input_encoder(layout_config(cfg, sources[source_name]))
    result: dict[str, Any] = {"clips": count, "input_size": size, "num_frames": cfg.DATA.NUM_FRAMES,
                              "source_frames": every.val.opener(val_names[0]).num_frames,
                              "loadavg_before": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="lps_bench_") as tmp:
        folder = Path(tmp)
        lists = write_split_lists(train_names, val_names, folder)
        layouts = {name: {**overrides, **lists} for name, overrides in sources.items()}
        source = layout_splits(cfg, layouts[source_name])
        start = time.perf_counter()
        layouts["precomputed"] = {**write_precomputed(source, encoder, folder / "precomputed"), **lists}
        layouts["packed"] = {**write_packed(source, folder / "packed"), **lists}
        layouts["packed_short"] = {**write_packed(source, folder / "packed_short", size), **lists}
        logger.info("data: wrote precomputed and packed stores of %d clips in %.1f s",
                    len(train_names) + len(val_names), time.perf_counter() - start)
        splits = {name: layout_splits(cfg, overrides) for name, overrides in layouts.items()}
        frames = source.val.opener(val_names[0]).read(np.arange(result["source_frames"]), gray=True)
        result["frame_size"] = list(frames.shape[1:])
        box = eval_crop_boxes(*result["frame_size"], 1)[0]  # the test view, as the item builder draws it
        crop_on_device = "video_luma" in layouts and box.shrink(size) < AREA_SHRINK
        loads = {name: s.val.load_item for name, s in splits.items()}
        precomputed = splits["precomputed"].val
        indices = [view_indices(precomputed, i) for i in range(count)]
        loads["jpeg_baseline"] = lambda i: jpeg_baseline_item(folder / "precomputed", precomputed.names[i],
                                                              indices[i], size)
        loads["packed_short_train"] = splits["packed_short"].train.load_item
        if crop_on_device:
            splits["video_luma_device"] = layout_splits(cfg, layouts["video_luma"], crop_on_device=True)
            loads["video_luma_device"] = splits["video_luma_device"].val.load_item
            crop_train = layout_splits(cfg, layouts["packed"], crop_on_device=True).train
            loads["packed_crop_device_train"] = crop_train.load_item
        with single_thread():
            for layout, timing in time_interleaved(loads, count, args.reps).items():
                result[layout] = timing
                logger.info("data %-24s %8.1f clips/s per worker (%.2f ms per clip, median pass %.2f)",
                            layout, timing["clips_per_s"], timing["ms_per_clip"], timing["ms_per_clip_median"])
            result["packed_short"].update(device_step(splits["packed_short"].val, encoder, args.reps))
            logger.info("data packed_short: planes from the windows %.2f ms per clip on one CPU thread",
                        result["packed_short"]["device_planes_ms"])
            if crop_on_device:
                device = result["video_luma_device"]
                device.update(device_step(splits["video_luma_device"].val, encoder, args.reps))
                device["device_planes_max_abs_diff_levels"] = planes_difference(
                    splits["video_luma_device"].val, splits["video_luma"].val, encoder)
                logger.info("data video_luma_device: levels, crop, resize and planes %.2f ms per clip on one "
                            "CPU thread (%.2f gray levels from the worker's crop at most)",
                            device["device_planes_ms"], device["device_planes_max_abs_diff_levels"])
            result["stages"] = bench_stages(frames, size, args.reps)
            result["stages"]["ms_per_clip"].update(bench_decode(splits, args.reps))
            logger.info("data stages (ms per clip): %s", result["stages"]["ms_per_clip"])
    result["loadavg_after"] = list(os.getloadavg())
    base = result["precomputed"]["clips_per_s"]
    result["ratios"] = {f"{layout}_over_precomputed": timing["clips_per_s"] / base
                        for layout, timing in result.items()
                        if isinstance(timing, dict) and "clips_per_s" in timing and layout not in BASELINES}
    result["ratios"]["precomputed_over_jpeg_baseline"] = base / result["jpeg_baseline"]["clips_per_s"]
    return result
