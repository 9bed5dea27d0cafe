"""Command line of the benchmark: parses the arguments, runs the asked sections, writes the JSON."""
from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import torch
from yacs.config import CfgNode

from tools.bench import attention, data, evaluate, report, train
from tools.bench.common import load_splits
from tools.bench.peak import PEAK_SIZES
from utils.allocator import keep_freed_memory
from utils.config import load_config
from utils.errors import USER_ERROR_EXIT_CODE, UserError
from utils.logger import setup_logging

logger = logging.getLogger(__name__)

SECTIONS = ("train", "checkpointing", "compile", "eval", "data", "attention", "all")
MODEL_SECTIONS = ("train", "checkpointing", "compile", "eval")  # the sections that need batches


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's arguments (see ``--help``)."""
    parser = argparse.ArgumentParser(description="Measures training, evaluation, data loading and attention "
                                                 "speed of a config, side by side.")
    parser.add_argument("--config", default=None, help="experiment YAML (default: the demo)")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE config overrides")
    parser.add_argument("--what", choices=SECTIONS, default="all",
                        help="what to measure (all = every section; train includes the matmul peak)")
    parser.add_argument("--json", required=True, help="file to write the results to")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions (medians)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="clips per train/eval step (0 = TRAIN.BATCH_SIZE / TEST.BATCH_SIZE)")
    parser.add_argument("--data-clips", type=int, default=data.DATA_CLIPS, help="clips per data measurement")
    parser.add_argument("--peak-sizes", type=int, nargs="+", default=list(PEAK_SIZES),
                        help="square matmul sides of the peak measurement")
    parser.add_argument("--profile", action="store_true", help="add a per-op profile of the train step")
    parser.add_argument("--compile", action="store_true",
                        help="with --what all, also compare torch.compile (compiling takes minutes on CPU)")
    parser.add_argument("--no-checkpointing", action="store_true",
                        help="skip the activation-checkpointing comparison")
    return parser.parse_args(argv)


def run(cfg: CfgNode, args: argparse.Namespace) -> dict[str, Any]:
    """Runs the sections ``args.what`` asks for.

    Args:
        cfg: the experiment config.
        args: the parsed arguments.

    Returns:
        The results (:func:`tools.bench.report.header` plus one entry per section and ``seconds``).
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    wanted = set(SECTIONS[:-1]) if args.what == "all" else {args.what}
    if args.no_checkpointing:
        wanted.discard("checkpointing")
    if args.what == "all" and not args.compile:
        wanted.discard("compile")
    if device.type == "cpu" and "train" not in wanted:
        keep_freed_memory()  # as the launcher does on CPU (the train section compares first)
    torch.manual_seed(cfg.SEED)
    results = report.header(cfg, device, args)
    start = time.perf_counter()
    splits = load_splits(cfg) if wanted & set(MODEL_SECTIONS) else None
    if "train" in wanted:
        results["train"] = train.bench_train(cfg, splits, device, args)
    if "checkpointing" in wanted:
        results["checkpointing"] = train.bench_checkpointing(cfg, splits, device, args)
    if "compile" in wanted:
        results["compile"] = train.bench_compile(cfg, splits, device, args)
    if "eval" in wanted:
        results["eval"] = evaluate.bench_eval(cfg, splits, device, args)
    if "attention" in wanted:
        results["attention"] = attention.bench_attention(cfg, device, args)
    if "data" in wanted:
        results["data"] = data.bench_data(cfg, args)
    results["seconds"] = time.perf_counter() - start
    return results


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns the exit status (``USER_ERROR_EXIT_CODE`` on a user error).

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
    """
    args = parse_args(argv)
    setup_logging(None)
    try:
        if (args.reps < 1 or args.warmup < 0 or args.batch_size < 0 or args.data_clips < 1
                or min(args.peak_sizes) < 1):
            raise UserError("--reps, --data-clips and --peak-sizes must be at least 1, --warmup "
                            "and --batch-size not negative")
        cfg = load_config(args.config, args.opts)
        results = run(cfg, args)
    except UserError as exc:
        logger.error("%s", exc)
        return USER_ERROR_EXIT_CODE
    report.write_json(args.json, results)
    report.log_summary(results)
    logger.info("benchmark written to %s (%.1f s)", args.json, results["seconds"])
    return 0
