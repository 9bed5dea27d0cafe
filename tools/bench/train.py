"""The train section: times :meth:`trainers.trainer.Trainer.train_step`, the run's one training step
(configured loss with its privacy term, precision, grad scaler, clipping, non-finite rules, head
steps, scheduler step), built by :func:`trainers.run.build_trainer` on a real loader batch; its
FLOPs, MFU and memory; activation checkpointing and ``torch.compile`` on and off."""
from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import Any

import torch
from yacs.config import CfgNode

from datasets import DataSplits
from tools.bench.common import loader_batch, make_model
from tools.bench.peak import count_flops, measure_matmul_peak
from tools.bench.profile import profile_step, time_optimizer_variants
from tools.bench.timing import LiveTensorMemory, peak_rss_bytes, synchronize, time_call, time_call_cpu
from trainers.distributed import DistInfo, unwrap
from trainers.precision import PRECISION_DTYPES
from trainers.run import build_trainer
from trainers.trainer import StepResult, Trainer
from utils.allocator import keep_freed_memory

logger = logging.getLogger(__name__)

CHECKPOINT_BATCH = 4  # batch of the activation-checkpointing comparison
SETTING_WARMUP = 1  # untimed steps before timing the default allocator
COMPILE_WARMUP = 2  # steps after the first before timing (a guard change may recompile once)
TIMED_STEP = "Trainer.train_step"
GRAD_FILL = 1e-3  # the gradients the optimizer alone is timed on (normal floats, a typical size)


class TrainerStep:
    """One optimizer step of ``trainer`` on a fixed loader batch: ``trainer.train_step([batch])``.

    Args:
        trainer: the trainer of the config (:func:`trainers.run.build_trainer`).
        batch: a collated loader batch (``frames``, ``label``, ``identity``, ...), on the CPU as a
            loader yields it (every step moves it to the device, as in training).
    """

    def __init__(self, trainer: Trainer, batch: dict[str, torch.Tensor]) -> None:
        self.trainer = trainer
        self.batch = batch
        self.last: StepResult | None = None

    def __call__(self) -> StepResult:
        self.last = self.trainer.train_step([self.batch])
        return self.last


def build_step(cfg: CfgNode, splits: DataSplits, device: torch.device, batch_size: int) -> TrainerStep:
    """A fresh model in train mode, its :class:`Trainer` built as the run builds it, and a batch.

    Args:
        cfg: the experiment config.
        splits: the benchmark's datasets (the batch: items of ``splits.train``).
        device: the device of the run.
        batch_size: clips per step.
    """
    torch.manual_seed(cfg.SEED)
    model = make_model(cfg, splits, device).train()
    trainer = build_trainer(cfg, DistInfo(device=device), model, max(len(splits.train) // batch_size, 1))
    return TrainerStep(trainer, loader_batch(splits.train, batch_size))


def step_memory(step: TrainerStep) -> dict[str, int]:
    """Activation bytes (alive when the model's forward returns: what autograd keeps for the
    backward) and peak bytes of one training step, from the caching allocator on CUDA and from
    :class:`~tools.bench.timing.LiveTensorMemory` elsewhere.

    Args:
        step: the step to measure (it takes one optimizer step).
    """
    device = step.trainer.device
    model = unwrap(step.trainer.model)
    marks: list[int] = []
    if device.type == "cuda":
        synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        handle = model.register_forward_hook(lambda *_: marks.append(torch.cuda.memory_allocated(device)))
        try:
            step()
        finally:
            handle.remove()
        synchronize(device)
        return {"act_bytes": int(marks[0] - base),
                "step_peak_bytes": int(torch.cuda.max_memory_allocated(device) - base)}
    tracker = LiveTensorMemory()
    handle = model.register_forward_hook(lambda *_: marks.append(tracker.current))
    try:
        with tracker:
            step()
    finally:
        handle.remove()
    return {"act_bytes": int(marks[0]), "step_peak_bytes": int(tracker.peak)}


def time_optimizer_step(optimizer: torch.optim.Optimizer, device: torch.device, reps: int) -> list[float]:
    """Seconds of ``optimizer.step()`` alone on constant gradients (``train_step`` leaves none
    behind; the cost does not depend on their values as long as they are normal floats: gradients
    of zeros would decay AdamW's moments into denormals, which are many times slower on a CPU and
    would slow the train steps timed afterwards). The parameters move a little.

    Args:
        optimizer: the optimizer (its parameter groups).
        device: the device of the run.
        reps: timed steps (after one untimed).
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for p in params:
        p.grad = torch.full_like(p, GRAD_FILL)
    try:
        return time_call(optimizer.step, device, reps, warmup=1)
    finally:
        optimizer.zero_grad(set_to_none=True)


def time_default_allocator(step: TrainerStep, reps: int) -> float:
    """Median train-step seconds with glibc's default allocator settings; then keeps freed memory
    (``utils.allocator``, what the launcher does on CPU), so the train timing that follows is the
    kept setting's side of the comparison.

    The defaults exist only before the first ``mallopt`` of the process (setting them back
    disables glibc's dynamic thresholds, and the heap keeps what it grew), so the two are timed
    one after the other, not interleaved; the process must not have changed them before.

    Args:
        step: the train step to time.
        reps: timed steps (after one untimed step).
    """
    default_step_s = statistics.median(time_call(step, torch.device("cpu"), reps, SETTING_WARMUP))
    keep_freed_memory()
    return default_step_s


def bench_train(cfg: CfgNode, splits: DataSplits, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    """Train-step time, FLOPs, MFU, memory (and a profile with ``--profile``).

    Args:
        cfg: the experiment config.
        splits: the benchmark's datasets.
        device: the device of the run.
        args: ``batch_size``, ``reps``, ``warmup``, ``peak_sizes``, ``profile``.
    """
    batch = args.batch_size or cfg.TRAIN.BATCH_SIZE
    precision = cfg.TRAIN.PRECISION
    peak = measure_matmul_peak(device, PRECISION_DTYPES[precision], tuple(args.peak_sizes))
    step = build_step(cfg, splits, device, batch)
    trainer, model = step.trainer, unwrap(step.trainer.model)
    logger.info("train: %s %s, batch %d, T=%d, %d px, %s, privacy loss %s", cfg.MODEL.ARCH, precision, batch,
                cfg.DATA.NUM_FRAMES, cfg.DATA.INPUT_SIZE, device, cfg.TRAIN.PRIVACY_LOSS)
    default_step_s = time_default_allocator(step, args.reps) if device.type == "cpu" else None
    times, cpu_times = time_call_cpu(step, device, args.reps, args.warmup)
    step_s = statistics.median(times)
    flops = count_flops(step)
    opt_times = time_optimizer_step(trainer.optimizer, device, args.reps)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    memory = step_memory(step)
    peak_mem = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()
    achieved = flops / step_s
    result = {
        "batch_size": batch, "step_s": step_s, "step_times_s": times, "clips_per_s": batch / step_s,
        "flops_per_step": flops, "achieved_flops": achieved, "peak_flops": peak["flops"],
        "peak_flops_by_size": peak["by_size"], "mfu": achieved / peak["flops"],
        "step_cpu_s": statistics.median(cpu_times),
        "mfu_cpu_time": flops / statistics.median(cpu_times) / peak["flops_per_cpu_s"],
        "optimizer_step_s": statistics.median(opt_times), "peak_mem_bytes": int(peak_mem),
        "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "text_cached": not any(p.requires_grad for p in model.transformer.parameters()), **memory,
        "timed_step": TIMED_STEP, "global_step": trainer.counters.global_step,
        "scheduler_steps": trainer.scheduler.step_count,
        "losses": dict(step.last.losses), "lr": trainer.scheduler.get_last_lr()[0],
        "privacy_loss": cfg.TRAIN.PRIVACY_LOSS, "grad_scaler": trainer.scaler is not None,
        "clip_grad": trainer.clip_grad,
    }
    result["text_tower"] = text_tower_flops(cfg, splits, device, batch, flops, result["text_cached"])
    if default_step_s is not None:  # the step above ran with freed memory kept
        result["host_allocator"] = {"default_step_s": default_step_s, "kept_step_s": step_s}
        logger.info("host allocator: %.3f s/step with glibc defaults, %.3f s/step keeping freed memory",
                    default_step_s, step_s)
    logger.info("train: %.3f s/step, %.2f clips/s, %.1f GFLOP/step, %.1f GFLOP/s achieved, peak "
                "%.1f GFLOP/s, MFU %.1f%% (by CPU time %.1f%%)", step_s, batch / step_s, flops / 1e9,
                achieved / 1e9, peak["flops"] / 1e9, 100 * result["mfu"], 100 * result["mfu_cpu_time"])
    if args.profile:
        result["optimizer_variants"] = time_optimizer_variants(trainer.optimizer, device, args.reps)
        result["profile"] = profile_step(step, device)
        logger.info("train profile by kind (%% of self time): %s", result["profile"]["by_kind_pct"])
    return result


def text_tower_flops(cfg: CfgNode, splits: DataSplits, device: torch.device, batch: int,
                     flops: int, text_cached: bool) -> dict[str, Any]:
    """FLOPs of the train step in both text-tower settings: frozen (``text`` in ``MODEL.FREEZE``,
    the class features computed once, the original release's recipe) and trained (the text tower
    runs forward and backward at every step). The configured setting's count is ``flops``; the
    other one is counted on a model built with ``text`` added to or taken from ``MODEL.FREEZE``.

    Args:
        cfg: the experiment config.
        splits: the benchmark's datasets.
        device: the device of the run.
        batch: clips per step.
        flops: the configured step's FLOPs.
        text_cached: whether the configured step has the text tower frozen.
    """
    freeze = [part for part in cfg.MODEL.FREEZE if part != "text"] + ([] if text_cached else ["text"])
    other_cfg = cfg.clone()
    other_cfg.defrost()
    other_cfg.MODEL.FREEZE = freeze
    other = count_flops(build_step(other_cfg, splits, device, batch))
    cached, trained = (flops, other) if text_cached else (other, flops)
    logger.info("train FLOPs per step: %.1f GFLOP with the text tower frozen (its features cached), %.1f GFLOP "
                "with it trained (%.2fx)", cached / 1e9, trained / 1e9, trained / cached)
    return {"text_frozen_flops_per_step": cached, "text_trained_flops_per_step": trained,
            "trained_over_frozen": trained / cached}


def bench_checkpointing(cfg: CfgNode, splits: DataSplits, device: torch.device,
                        args: argparse.Namespace) -> dict[str, Any]:
    """Activation checkpointing off vs on at batch CHECKPOINT_BATCH: step time and memory.

    Args:
        cfg: the experiment config.
        splits: the benchmark's datasets.
        device: the device of the run.
        args: ``reps`` and ``warmup``.
    """
    step = build_step(cfg, splits, device, CHECKPOINT_BATCH)
    model = unwrap(step.trainer.model)
    result: dict[str, Any] = {"batch_size": CHECKPOINT_BATCH}
    for name, enabled in (("off", False), ("on", True)):
        model.set_grad_checkpointing(enabled)
        times = time_call(step, device, args.reps, args.warmup)
        result[name] = {"step_s": statistics.median(times), **step_memory(step)}
        logger.info("checkpointing %s: %.3f s/step, activations %.1f MB, step peak %.1f MB", name,
                    result[name]["step_s"], result[name]["act_bytes"] / 1e6,
                    result[name]["step_peak_bytes"] / 1e6)
    result["act_ratio"] = result["on"]["act_bytes"] / max(result["off"]["act_bytes"], 1)
    result["step_peak_ratio"] = result["on"]["step_peak_bytes"] / max(result["off"]["step_peak_bytes"], 1)
    result["time_ratio"] = result["on"]["step_s"] / result["off"]["step_s"]
    return result


def bench_compile(cfg: CfgNode, splits: DataSplits, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    """``torch.compile`` off vs on (as ``TRAIN.COMPILE`` wraps the trainer's model): train-step
    time, the first step (the compilation) reported apart.

    Args:
        cfg: the experiment config.
        splits: the benchmark's datasets.
        device: the device of the run.
        args: ``batch_size``, ``reps`` and ``warmup``.
    """
    batch = args.batch_size or cfg.TRAIN.BATCH_SIZE
    result: dict[str, Any] = {"batch_size": batch}
    for name in ("off", "on"):
        step = build_step(cfg, splits, device, batch)
        if name == "on":
            torch._dynamo.reset()
            step.trainer.model = torch.compile(step.trainer.model)
        start = time.perf_counter()
        step()
        synchronize(device)
        first = time.perf_counter() - start
        times = time_call(step, device, args.reps, max(args.warmup, COMPILE_WARMUP))
        result[name] = {"step_s": statistics.median(times), "first_step_s": first}
        logger.info("compile %s: %.3f s/step (first step %.1f s)", name, result[name]["step_s"], first)
    result["speedup"] = result["off"]["step_s"] / result["on"]["step_s"]
    return result
