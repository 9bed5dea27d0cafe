"""The benchmark's results: the run header, the JSON file (written atomically) and the summary."""
from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from yacs.config import CfgNode

from models.attention import BACKENDS
from utils.misc import atomic_write_text

logger = logging.getLogger(__name__)


def header(cfg: CfgNode, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    """What every result file starts with: device, precision, threads, versions, model and input.

    Args:
        cfg: the experiment config.
        device: the device of the run.
        args: ``reps`` and ``warmup``.
    """
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    return {"device": name, "dtype": cfg.TRAIN.PRECISION, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "arch": cfg.MODEL.ARCH, "input_size": cfg.DATA.INPUT_SIZE,
            "num_frames": cfg.DATA.NUM_FRAMES, "attn_backend": cfg.MODEL.ATTN_BACKEND,
            "encoder": cfg.MODEL.ENCODER, "privacy_loss": cfg.TRAIN.PRIVACY_LOSS,
            "reps": args.reps, "warmup": args.warmup}


def write_json(path: str | Path, results: dict[str, Any]) -> None:
    """Writes ``results`` atomically (temporary file + rename).

    Args:
        path: the JSON file.
        results: the benchmark's results.
    """
    atomic_write_text(path, json.dumps(results, indent=1) + "\n")


def summary_lines(results: dict[str, Any]) -> list[str]:
    """One line per measured section: the headline figure of each.

    Args:
        results: the benchmark's results.
    """
    lines = [f"{results['arch']} {results['dtype']} on {results['device']}, {results['num_frames']} frames "
             f"of {results['input_size']} px"]
    if "train" in results:
        train = results["train"]
        lines.append(f"train ({train['timed_step']}): {train['step_s']:.3f} s/step, {train['clips_per_s']:.2f} "
                     f"clips/s, MFU {100 * train['mfu']:.1f}%, step peak {train['step_peak_bytes'] / 1e6:.1f} MB")
    if "checkpointing" in results:
        ckpt = results["checkpointing"]
        lines.append(f"checkpointing: activations x{ckpt['act_ratio']:.2f}, time x{ckpt['time_ratio']:.2f}")
    if "compile" in results:
        lines.append(f"compile: speedup x{results['compile']['speedup']:.2f}")
    if "eval" in results:
        lines.append(f"eval: {results['eval']['videos_per_s']:.2f} videos/s")
    if "attention" in results:
        attention = results["attention"]
        lines.append("attention fwd+bwd: " + ", ".join(
            f"{name} {1e3 * attention[name]['fwd_bwd_s']:.2f} ms" for name in BACKENDS
            if attention[name].get("available")))
    if "data" in results:
        ratios = results["data"]["ratios"]
        lines.append("data over precomputed: " + ", ".join(
            f"{key.removesuffix('_over_precomputed')} x{value:.2f}" for key, value in ratios.items()))
    return lines


def log_summary(results: dict[str, Any]) -> None:
    """Logs :func:`summary_lines`."""
    for line in summary_lines(results):
        logger.info("%s", line)
