"""Loader throughput: training clips/s of a real ``DataLoader`` with N workers over a packed store
of the benchmark's clips at the input size (what feeds a GPU step), one JSON.

Usage: python -m tools.bench.loader --workers 8 --batches 40 --json loader.json [--opts KEY VALUE ...]
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from datasets import TrainSampler, collate_for
from datasets.loader import worker_options
from tools.bench.common import bench_config
from tools.bench.layouts import layout_splits, write_packed
from utils.config import load_config
from utils.misc import atomic_write_text

logger = logging.getLogger(__name__)

WARMUP_BATCHES = 2  # batches before the clock starts (worker start-up, page cache)


def loader_clips_per_s(cfg, workers: int, batches: int, batch_size: int) -> dict[str, Any]:
    """Training clips/s of ``workers`` loader workers over a packed store at ``DATA.INPUT_SIZE``.

    Args:
        cfg: the experiment config (the benchmark's synthetic clips when DATA.ROOT is empty).
        workers: loader worker processes.
        batches: timed batches.
        batch_size: clips per batch.
    """
    source = layout_splits(bench_config(cfg), {"LAYOUT": "frames"})
    with tempfile.TemporaryDirectory(prefix="lps_loader_") as tmp:
        packed = layout_splits(bench_config(cfg), write_packed(source, Path(tmp) / "packed", cfg.DATA.INPUT_SIZE))
        dataset = packed.train
        sampler = TrainSampler(len(dataset), seed=cfg.SEED)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_for(dataset),
                            pin_memory=torch.cuda.is_available(), drop_last=True,  # as the training loader
                            **worker_options(workers))

        def endless():
            for epoch in itertools.count():
                sampler.set_epoch(epoch)
                yield from loader

        stream = endless()
        for _ in range(WARMUP_BATCHES):
            next(stream)
        start = time.perf_counter()
        clips = sum(len(next(stream)["label"]) for _ in range(batches))
        seconds = time.perf_counter() - start
    return {"workers": workers, "batches": batches, "batch_size": batch_size, "clips": clips,
            "seconds": round(seconds, 3), "clips_per_s": clips / seconds}


def main(argv: list[str] | None = None) -> int:
    """Measures and writes the JSON."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--opts", nargs="*", default=["DATA.INPUT_SIZE", "224"], help="KEY VALUE overrides")
    args = parser.parse_args(argv)
    result = loader_clips_per_s(load_config(None, args.opts), args.workers, args.batches, args.batch_size)
    logger.info("loader: %.1f clips/s with %d workers", result["clips_per_s"], args.workers)
    atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
