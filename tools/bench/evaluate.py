"""The eval section: times the evaluation's predict path, :func:`trainers.evaluate.predict`, on real
validation batches (every view of each video, softmax averaged over the views)."""
from __future__ import annotations

import argparse
import logging
import statistics
from typing import Any

import torch
from yacs.config import CfgNode

from datasets import DataSplits
from tools.bench.common import loader_batch, make_model
from tools.bench.timing import time_call
from trainers.evaluate import predict

logger = logging.getLogger(__name__)


def bench_eval(cfg: CfgNode, splits: DataSplits, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    """Videos per second of :func:`~trainers.evaluate.predict` on one loader batch of
    ``TEST.BATCH_SIZE`` (or ``--batch-size``) validation videos.

    Args:
        cfg: the experiment config.
        splits: the benchmark's datasets (the batch: items of ``splits.val``).
        device: the device of the run.
        args: ``batch_size``, ``reps`` and ``warmup``.

    Returns:
        ``batch_size`` (videos), ``views`` (per video: ``TEST.NUM_CLIP`` x ``TEST.NUM_CROP``),
        ``step_s`` (per batch), ``clips_per_s`` (single-view clips through the model per second)
        and ``videos_per_s``.
    """
    batch_size = args.batch_size or cfg.TEST.BATCH_SIZE
    torch.manual_seed(cfg.SEED)
    model = make_model(cfg, splits, device)
    batches = [loader_batch(splits.val, batch_size)]
    times = time_call(lambda: predict(model, batches, device, cfg.TRAIN.PRECISION), device, args.reps, args.warmup)
    step_s, views = statistics.median(times), splits.val.num_views
    logger.info("eval: %.3f s per batch of %d videos (%d views each), %.2f videos/s", step_s, batch_size,
                views, batch_size / step_s)
    return {"batch_size": batch_size, "views": views, "step_s": step_s,
            "clips_per_s": batch_size * views / step_s, "videos_per_s": batch_size / step_s}
