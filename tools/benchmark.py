"""Measures training, evaluation, data loading and attention speed of a config, side by side.

Every figure comes from this one run on this one device: the train step (forward, backward and
optimizer step; median over ``--reps`` after ``--warmup``), its FLOPs counted by
``torch.utils.flop_counter``, the dense matmul peak of the same device and dtype (large square
matmuls), model FLOP utilisation (achieved / peak), memory, activation checkpointing on and off,
``torch.compile`` on and off, evaluation throughput, per-worker data-loading speed of every
storage layout (video, frames, precomputed fd/avg JPEGs, packed at the decoded size and at the
input size, packed with the planes computed on the device) against a plain opencv JPEG read, and
the attention backends on the model's frame-attention shapes.

Example::

    python tools/benchmark.py --what all --json bench_demo.json
    python tools/benchmark.py --what train --opts MODEL.ARCH ViT-B/16 DATA.INPUT_SIZE 224 \\
        TRAIN.PRECISION bf16 --batch-size 1 --reps 3 --json vitb16_bf16.json

Memory on CPU: ``peak_mem_bytes`` is the process peak RSS (``getrusage``); the per-step figures
(``act_bytes``: tensors alive at the end of the forward pass, i.e. what autograd keeps for the
backward; ``step_peak_bytes``: the peak of tensors allocated during one step) are tracked
exactly by a dispatch mode that follows every tensor storage the step creates. On CUDA the same
figures come from the caching allocator's counters.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count
from yacs.config import CfgNode

from datasets.dataset import ClipCollate, ClipDataset
from datasets.ifns import (GRAY_OFFSET, GRAY_SCALE, PIXEL_MAX, DevicePlanes, PlaneNorm, ifns_planes,
                           ifns_planes_uint8, needed_frames)
from datasets.ntu import load_class_names
from datasets.packed import PackedOpener, PackedWriter
from datasets.readers import FrameFolderClip, LumaLevels, PrecomputedClip, VideoClip
from datasets.transforms import AREA_SHRINK, crop_resize, eval_crop_boxes
from models import build_model, clip_size
from models.attention import Attention, math_attention, uses_formula
from trainers.optim import build_optimizer
from trainers.precision import PRECISION_DTYPES, autocast_context
from utils.allocator import keep_freed_memory
from utils.config import load_config, resolve_path
from utils.errors import USER_ERROR_EXIT_CODE, UserError
from utils.logger import setup_logging

logger = logging.getLogger(__name__)

SECTIONS = ("train", "checkpointing", "compile", "eval", "data", "attention", "all")
PEAK_SIZES = (2048, 4096)  # square matmul sides of the peak measurement (best median wins)
PEAK_REPS = 3
CHECKPOINT_BATCH = 4  # batch of the activation-checkpointing comparison
SOURCE_TO_INPUT = 8 / 7  # synthetic frame side / input side for large inputs (256 px for 224)
DATA_CLIPS = 8  # clips per data-layout measurement
SYNTHETIC_SMALL = {"NUM_ACTIONS": 4, "NUM_PERFORMERS": 2, "NUM_SETUPS": 2, "NUM_CAMERAS": 1,
                   "NUM_REPLICATIONS": 1}  # the small synthetic set made for large inputs
PRECOMPUTED_JPEG_QUALITY = 95
PROFILE_ROWS = 15
PROFILE_STEPS = 3  # forward+backward passes averaged by the profile
SETTING_WARMUP = 1  # untimed calls before timing the default allocator or a decoder
COMPILE_WARMUP = 2  # steps after the first before timing (a guard change may recompile once)
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul",
              "aten::baddbmm", "aten::convolution", "aten::_convolution", "aten::mkldnn_convolution")
ATTENTION_OPS = ("aten::_scaled_dot_product_flash_attention_for_cpu",
                 "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
                 "aten::_scaled_dot_product_flash_attention",
                 "aten::_scaled_dot_product_efficient_attention",
                 "aten::_scaled_dot_product_cudnn_attention")

COPY_OPS = ("aten::copy_", "aten::cat", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::fill_",
            "aten::zero_")
OPTIMIZER_VARIANTS = ("for-loop", "foreach", "fused")  # torch.optim.AdamW implementations


# ----------------------------------------------------------------------------- timing, memory
def synchronize(device: torch.device) -> None:
    """Waits for queued device work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, reps: int, warmup: int) -> list[float]:
    """Seconds of each of ``reps`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def time_call_cpu(fn: Callable[[], Any], device: torch.device, reps: int, warmup: int) -> tuple[list[float], list[float]]:
    """Like :func:`time_call`, also returning the process CPU seconds (all threads) of each call.

    On a shared CPU, wall time grows with the other jobs' load while the CPU time of this process
    stays close to the work done, so ratios of CPU times (MFU on CPU) survive a busy machine.
    """
    for _ in range(warmup):
        fn()
    synchronize(device)
    walls, cpus = [], []
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        synchronize(device)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return walls, cpus


class LiveTensorMemory(TorchDispatchMode):
    """Tracks the bytes of tensor storages created under it and still alive (and their peak).

    Works on every device (it follows storages through weak references), so it gives CPU runs the
    allocation figures that ``torch.cuda.max_memory_allocated`` gives on CUDA.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def reset_peak(self) -> None:
        """Restarts the peak at the current live bytes."""
        self.peak = self.current

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or tensor.is_meta:
                continue
            storage = tensor.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if key and nbytes and key not in self.live:
                self.live[key] = nbytes
                self.current += nbytes
                self.peak = max(self.peak, self.current)
                weakref.finalize(storage, self._free, key)
        return out


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_matmul_peak(device: torch.device, dtype: torch.dtype, sizes: tuple[int, ...] = PEAK_SIZES,
                        reps: int = PEAK_REPS) -> dict:
    """Dense matmul FLOP/s of square ``n x n`` products: the best median over ``sizes``.

    Returns:
        ``{"flops": best, "by_size": {n: flops}}``.
    """
    by_size, by_size_cpu = {}, {}
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        walls, cpus = time_call_cpu(lambda: torch.mm(a, b), device, reps, warmup=1)
        by_size[str(n)] = 2.0 * n ** 3 / statistics.median(walls)
        by_size_cpu[str(n)] = 2.0 * n ** 3 / statistics.median(cpus)
        logger.info("matmul peak %s %dx%d: %.1f GFLOP/s (%.1f GFLOP per CPU-second)",
                    str(dtype).replace("torch.", ""), n, n, by_size[str(n)] / 1e9, by_size_cpu[str(n)] / 1e9)
    return {"flops": max(by_size.values()), "by_size": by_size,
            "flops_per_cpu_s": max(by_size_cpu.values()), "by_size_per_cpu_s": by_size_cpu}


# ----------------------------------------------------------------------------- model steps
class TrainStep:
    """One training step (forward, loss, backward, optimizer step) on a fixed random batch.

    Args:
        model: the model (on ``device``).
        batch_size: clips per step.
        cfg: experiment config (input shape, labels, optimizer, precision).
        device: device of the run.
    """

    def __init__(self, model: torch.nn.Module, batch_size: int, cfg: CfgNode, device: torch.device) -> None:
        generator = torch.Generator().manual_seed(cfg.SEED)
        data = cfg.DATA
        shape = (batch_size, data.NUM_FRAMES, 3, data.INPUT_SIZE, data.INPUT_SIZE)
        self.clips = torch.randn(shape, generator=generator).to(device)  # [B, T, 3, S, S]
        self.labels = torch.randint(data.NUM_CLASSES, (batch_size,), generator=generator).to(device)
        self.identities = torch.randint(data.NUM_IDENTITIES, (batch_size,), generator=generator).to(device)
        self.model = model
        self.precision = cfg.TRAIN.PRECISION
        self.device = device
        train = cfg.TRAIN
        self.optimizer = build_optimizer(model, lr=train.LR, new_module_lr_mult=train.NEW_MODULE_LR_MULT,
                                         weight_decay=train.WEIGHT_DECAY, betas=tuple(train.BETAS),
                                         eps=train.EPS)

    def forward_loss(self) -> torch.Tensor:
        """Forward pass and loss under the configured autocast."""
        with autocast_context(self.precision, self.device):
            action, identity = self.model(self.clips)
        return F.cross_entropy(action.float(), self.labels) + F.cross_entropy(identity.float(), self.identities)

    def forward_backward(self) -> None:
        """Forward and backward (what the FLOP count covers)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.forward_loss().backward()

    def __call__(self) -> None:
        self.forward_backward()
        self.optimizer.step()


def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode counts the CUDA fused attention kernels but not the CPU one: same formulas
CPU_SDPA_FLOP_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flops,
}


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` counted by ``FlopCounterMode`` (matmuls, convolutions, attention)."""
    counter = FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOP_FORMULAS)
    with counter:
        fn()
    return int(counter.get_total_flops())


def step_memory(step: TrainStep) -> dict:
    """Activation bytes (alive after the forward) and peak bytes of one training step."""
    device = step.device
    if device.type == "cuda":
        synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step.optimizer.zero_grad(set_to_none=True)
        loss = step.forward_loss()
        synchronize(device)
        act = torch.cuda.memory_allocated(device) - base
        loss.backward()
        step.optimizer.step()
        synchronize(device)
        return {"act_bytes": int(act), "step_peak_bytes": int(torch.cuda.max_memory_allocated(device) - base)}
    step.optimizer.zero_grad(set_to_none=True)
    tracker = LiveTensorMemory()
    with tracker:
        loss = step.forward_loss()
        act = tracker.current
        loss.backward()
        del loss
        step.optimizer.step()
    return {"act_bytes": int(act), "step_peak_bytes": int(tracker.peak)}


def profile_step(step: TrainStep, rows: int = PROFILE_ROWS) -> dict:
    """Where the time of forward+backward goes, per step over ``PROFILE_STEPS`` steps: top ops by
    self time and a summary by kind (the optimizer step is timed apart:
    ``train.optimizer_step_s``). ``wall_ms`` beside ``total_self_ms`` shows how much of the wall
    time the profile accounts for (without shapes recorded the profiler adds little)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if step.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(PROFILE_STEPS):
            step.forward_backward()
        synchronize(step.device)
        wall_ms = 1e3 * (time.perf_counter() - start) / PROFILE_STEPS
    averages = prof.key_averages()
    use_cuda = step.device.type == "cuda"

    def self_us(event) -> float:
        return event.self_device_time_total if use_cuda else event.self_cpu_time_total

    total = sum(self_us(e) for e in averages) or 1.0
    table = sorted(averages, key=self_us, reverse=True)[:rows]
    per_step = 1e3 * PROFILE_STEPS  # microseconds over all steps -> milliseconds per step
    kinds = {"matmul": 0.0, "attention": 0.0, "copy": 0.0, "other": 0.0}
    for event in averages:
        name = event.key
        if name in MATMUL_OPS:
            kinds["matmul"] += self_us(event)
        elif name in ATTENTION_OPS:
            kinds["attention"] += self_us(event)
        elif name in COPY_OPS:
            kinds["copy"] += self_us(event)
        else:
            kinds["other"] += self_us(event)
    return {
        "steps": PROFILE_STEPS, "wall_ms": wall_ms, "total_self_ms": total / per_step,
        "by_kind_pct": {k: round(100.0 * v / total, 1) for k, v in kinds.items()},
        "top_ops": [{"op": e.key, "self_ms": round(self_us(e) / per_step, 2), "calls": e.count // PROFILE_STEPS,
                     "pct": round(100.0 * self_us(e) / total, 1)} for e in table],
    }


def time_optimizer_variants(optimizer: torch.optim.Optimizer, device: torch.device, reps: int) -> dict:
    """Seconds per AdamW step of each implementation on the same parameter groups and gradients.

    The parameters move a little with each timed step; their values do not matter here.
    """
    result = {}
    for variant in OPTIMIZER_VARIANTS:
        flags = {"foreach": variant == "foreach", "fused": variant == "fused"}
        groups = [{k: v for k, v in group.items() if k not in ("foreach", "fused")}
                  for group in optimizer.param_groups]
        try:
            candidate = torch.optim.AdamW(groups, **flags)
            times = time_call(candidate.step, device, reps, warmup=1)
        except (RuntimeError, ValueError) as exc:  # an implementation this device lacks
            result[variant] = {"error": str(exc).splitlines()[0]}
            continue
        result[variant] = {"step_s": statistics.median(times)}
        logger.info("optimizer AdamW %s: %.3f s per step", variant, result[variant]["step_s"])
    return result


def time_default_allocator(step: TrainStep, reps: int) -> float:
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


def make_model(cfg: CfgNode, device: torch.device) -> torch.nn.Module:
    """The configured model on ``device`` (random init unless MODEL.PRETRAINED names a file)."""
    class_names = load_class_names(resolve_path(cfg.DATA.LABEL_LIST), cfg.DATA.NUM_CLASSES)
    return build_model(cfg, class_names).to(device)


def bench_train(cfg: CfgNode, device: torch.device, args: argparse.Namespace) -> dict:
    """Train-step time, FLOPs, MFU, memory (and a profile with ``--profile``)."""
    batch = args.batch_size or cfg.TRAIN.BATCH_SIZE
    precision = cfg.TRAIN.PRECISION
    peak = measure_matmul_peak(device, PRECISION_DTYPES[precision], tuple(args.peak_sizes))
    model = make_model(cfg, device).train()
    step = TrainStep(model, batch, cfg, device)
    logger.info("train: %s %s, batch %d, T=%d, %d px, %s", cfg.MODEL.ARCH, precision, batch,
                cfg.DATA.NUM_FRAMES, cfg.DATA.INPUT_SIZE, device)
    default_step_s = time_default_allocator(step, args.reps) if device.type == "cpu" else None
    times, cpu_times = time_call_cpu(step, device, args.reps, args.warmup)
    step_s = statistics.median(times)
    flops = count_flops(step.forward_backward)
    opt_times = time_call(step.optimizer.step, device, args.reps, warmup=0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    memory = step_memory(step)
    peak_mem = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()
    achieved = flops / step_s
    text_cached = not any(p.requires_grad for p in model.transformer.parameters())
    result = {
        "batch_size": batch, "step_s": step_s, "step_times_s": times, "clips_per_s": batch / step_s,
        "flops_per_step": flops, "achieved_flops": achieved, "peak_flops": peak["flops"],
        "peak_flops_by_size": peak["by_size"], "mfu": achieved / peak["flops"],
        "step_cpu_s": statistics.median(cpu_times),
        "mfu_cpu_time": flops / statistics.median(cpu_times) / peak["flops_per_cpu_s"],
        "optimizer_step_s": statistics.median(opt_times), "peak_mem_bytes": int(peak_mem),
        "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "text_cached": text_cached, **memory,
    }
    if default_step_s is not None:  # the step above ran with freed memory kept
        result["host_allocator"] = {"default_step_s": default_step_s, "kept_step_s": step_s}
        logger.info("host allocator: %.3f s/step with glibc defaults, %.3f s/step keeping freed memory",
                    default_step_s, step_s)
    logger.info("train: %.3f s/step, %.2f clips/s, %.1f GFLOP/step, %.1f GFLOP/s achieved, peak "
                "%.1f GFLOP/s, MFU %.1f%% (by CPU time %.1f%%)", step_s, batch / step_s, flops / 1e9,
                achieved / 1e9, peak["flops"] / 1e9, 100 * result["mfu"], 100 * result["mfu_cpu_time"])
    if args.profile:
        result["optimizer_variants"] = time_optimizer_variants(step.optimizer, device, args.reps)
        result["profile"] = profile_step(step)
        logger.info("train profile by kind (%% of self time): %s", result["profile"]["by_kind_pct"])
    return result


def bench_checkpointing(cfg: CfgNode, device: torch.device, args: argparse.Namespace) -> dict:
    """Activation checkpointing off vs on at batch CHECKPOINT_BATCH: step time and memory."""
    model = make_model(cfg, device).train()
    step = TrainStep(model, CHECKPOINT_BATCH, cfg, device)
    result = {"batch_size": CHECKPOINT_BATCH}
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


def bench_compile(cfg: CfgNode, device: torch.device, args: argparse.Namespace) -> dict:
    """``torch.compile`` off vs on: train-step time (compile time reported apart)."""
    batch = args.batch_size or cfg.TRAIN.BATCH_SIZE
    result = {"batch_size": batch}
    for name in ("off", "on"):
        torch.manual_seed(cfg.SEED)
        model = make_model(cfg, device).train()
        step = TrainStep(model, batch, cfg, device)
        if name == "on":
            torch._dynamo.reset()
            step.model = torch.compile(model)
        start = time.perf_counter()
        step()
        synchronize(device)
        first = time.perf_counter() - start
        times = time_call(step, device, args.reps, max(args.warmup, COMPILE_WARMUP))
        result[name] = {"step_s": statistics.median(times), "first_step_s": first}
        logger.info("compile %s: %.3f s/step (first step %.1f s)", name, result[name]["step_s"], first)
    result["speedup"] = result["off"]["step_s"] / result["on"]["step_s"]
    return result


def bench_eval(cfg: CfgNode, device: torch.device, args: argparse.Namespace) -> dict:
    """Evaluation forward (no grad, autocast) clips/s at TEST.BATCH_SIZE single-view clips."""
    batch = args.batch_size or cfg.TEST.BATCH_SIZE
    model = make_model(cfg, device).eval()
    data = cfg.DATA
    clips = torch.randn(batch, data.NUM_FRAMES, 3, data.INPUT_SIZE, data.INPUT_SIZE, device=device)

    def forward() -> None:
        with torch.inference_mode(), autocast_context(cfg.TRAIN.PRECISION, device):
            model(clips)

    times = time_call(forward, device, args.reps, args.warmup)
    step_s = statistics.median(times)
    logger.info("eval: %.3f s per batch of %d, %.2f clips/s", step_s, batch, batch / step_s)
    return {"batch_size": batch, "step_s": step_s, "clips_per_s": batch / step_s}


# ----------------------------------------------------------------------------- attention
def bench_attention(cfg: CfgNode, device: torch.device, args: argparse.Namespace) -> dict:
    """Frame attention with the message token (the CFSA hot path) per backend, forward+backward."""
    size = clip_size(cfg)
    batch = args.batch_size or cfg.TRAIN.BATCH_SIZE
    tokens = 1 + (cfg.DATA.INPUT_SIZE // size.patch_size) ** 2
    n = batch * cfg.DATA.NUM_FRAMES
    shapes = {"sequences": n, "tokens": tokens, "width": size.width, "heads": size.heads}
    result: dict[str, Any] = {"shape": shapes}
    generator = torch.Generator().manual_seed(cfg.SEED)
    x = torch.randn(n, tokens, size.width, generator=generator).to(device).requires_grad_()
    extra = torch.randn(n, 1, size.width, generator=generator).to(device).requires_grad_()
    for backend in ("math", "sdpa", "triton"):
        if backend == "triton" and not triton_available(device):
            result[backend] = {"available": False}
            logger.info("attention triton: not available on %s", device)
            continue
        torch.manual_seed(cfg.SEED)
        attention = Attention(size.width, size.heads, backend=backend).to(device)

        def forward() -> torch.Tensor:
            with autocast_context(cfg.TRAIN.PRECISION, device):
                return attention(x, extra=extra)

        def forward_backward() -> None:
            forward().float().sum().backward()

        fwd = time_call(forward, device, args.reps, args.warmup)
        fwd_bwd = time_call(forward_backward, device, args.reps, args.warmup)
        result[backend] = {"available": True, "kernel": attention_kernel(backend, device, cfg.TRAIN.PRECISION),
                           "fwd_s": statistics.median(fwd), "fwd_bwd_s": statistics.median(fwd_bwd)}
        logger.info("attention %s: forward %.2f ms, forward+backward %.2f ms", backend,
                    1e3 * result[backend]["fwd_s"], 1e3 * result[backend]["fwd_bwd_s"])
    result["kernels"] = bench_attention_kernels(cfg, batch, device, args)
    return result


def bench_attention_kernels(cfg: CfgNode, batch: int, device: torch.device,
                            args: argparse.Namespace) -> dict:
    """PyTorch's fused ``scaled_dot_product_attention`` against the explicit formula, kernels only,
    on every attention shape of the model in the run's dtype: the side-by-side measurement behind
    the ``sdpa`` backend's choice on CPU (``models.attention``).

    Args:
        cfg: experiment config (model size, input size, frames, classes, precision).
        batch: clips B.
        device: device of the run.
        args: ``reps`` and ``warmup``.

    Returns:
        ``{shape: {"q": [N, H, Lq, D], "kv_len": Lk, kernel: {"fwd_s", "fwd_bwd_s"}}}``.
    """
    size = clip_size(cfg)
    frames, patches = cfg.DATA.NUM_FRAMES, (cfg.DATA.INPUT_SIZE // size.patch_size) ** 2
    head_dim = size.width // size.heads
    shapes = {  # name: (sequences N, heads H, queries Lq, keys Lk, causal)
        "frame": (batch * frames, size.heads, patches + 1, patches + 2, False),
        "message": (batch, size.heads, frames, frames, False),
        "temporal": (batch, size.embed_dim // head_dim, frames, frames, False),
        "prompt": (batch, size.embed_dim // head_dim, cfg.DATA.NUM_CLASSES, patches, False),
        "text": (cfg.DATA.NUM_CLASSES, size.text_heads, size.context_length, size.context_length, True),
    }
    dtype = PRECISION_DTYPES[cfg.TRAIN.PRECISION]
    generator = torch.Generator().manual_seed(cfg.SEED)
    result: dict[str, Any] = {}
    for shape, (n, heads, queries, keys, causal) in shapes.items():
        def tensor(length: int) -> torch.Tensor:
            return torch.randn(n, heads, length, head_dim, generator=generator).to(device, dtype).requires_grad_()

        q, k, v = tensor(queries), tensor(keys), tensor(keys)
        kernels = {"torch_fused": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                   "formula": lambda: math_attention(q, k, v, causal)}
        result[shape] = {"q": [n, heads, queries, head_dim], "kv_len": keys}
        for name, kernel in kernels.items():
            with torch.no_grad():
                fwd = time_call(kernel, device, args.reps, args.warmup)
            fwd_bwd = time_call(lambda: kernel().sum().backward(), device, args.reps, args.warmup)
            result[shape][name] = {"fwd_s": statistics.median(fwd), "fwd_bwd_s": statistics.median(fwd_bwd)}
        fused, formula = result[shape]["torch_fused"], result[shape]["formula"]
        logger.info("attention kernels, %s %s: fused %.2f / %.2f ms, formula %.2f / %.2f ms (forward / "
                    "forward+backward)", shape, str(dtype).replace("torch.", ""), 1e3 * fused["fwd_s"],
                    1e3 * fused["fwd_bwd_s"], 1e3 * formula["fwd_s"], 1e3 * formula["fwd_bwd_s"])
    return result


def attention_kernel(backend: str, device: torch.device, precision: str) -> str:
    """Which kernel the frame attention of ``backend`` runs: formula, torch_fused or triton."""
    if backend == "triton" and triton_available(device):
        return "triton"
    if uses_formula(backend, device, PRECISION_DTYPES[precision]):
        return "formula"
    return "torch_fused"


def triton_available(device: torch.device) -> bool:
    """Whether the project's Triton kernel can run on ``device``."""
    try:
        from models import triton_attention
    except ImportError:
        return False
    return bool(triton_attention.is_available(device))


# ----------------------------------------------------------------------------- data
def data_config(cfg: CfgNode) -> CfgNode:
    """The config the data benchmark reads: for synthetic data and inputs larger than the
    synthetic frames, a small synthetic set at ``INPUT_SIZE * 8/7`` (256 px for 224)."""
    cfg = cfg.clone()
    cfg.defrost()
    syn = cfg.DATA.SYNTHETIC
    if not cfg.DATA.ROOT and syn.ENABLED and syn.SIZE < cfg.DATA.INPUT_SIZE:
        syn.SIZE = int(round(cfg.DATA.INPUT_SIZE * SOURCE_TO_INPUT))
        for key, value in SYNTHETIC_SMALL.items():
            syn[key] = value
    cfg.freeze()
    return cfg


def _open_frames(name: str, root: Path) -> FrameFolderClip:
    return FrameFolderClip(root / name, name)


def _open_video(name: str, root: Path, ext: str, backend: str = "auto",
                luma_levels: LumaLevels | None = None) -> VideoClip:
    return VideoClip(root / f"{name}{ext}", name, backend=backend, luma_levels=luma_levels)


def _open_precomputed(name: str, root: Path) -> PrecomputedClip:
    return PrecomputedClip(root / "fd" / name, root / "avg" / name, name)


def source_openers(cfg: CfgNode) -> tuple[dict[str, Callable], list[str]]:
    """Openers of the layouts the config's data has (synthetic: video and frames) and the names."""
    from datasets.loader import build_datasets

    splits = build_datasets(cfg)
    names = splits.train.names + splits.val.names
    if splits.synthetic_root is not None:
        source = splits.synthetic_root / cfg.DATA.SYNTHETIC.SOURCE
        videos = source / "videos"
        openers = {"video": functools.partial(_open_video, root=videos, ext=".mp4"),
                   "video_opencv": functools.partial(_open_video, root=videos, ext=".mp4", backend="opencv"),
                   "video_luma": functools.partial(_open_video, root=videos, ext=".mp4", backend="luma",
                                                   luma_levels=LumaLevels()),
                   "frames": functools.partial(_open_frames, root=source / "frames")}
    else:
        openers = {cfg.DATA.LAYOUT: splits.train.opener}
    return openers, names


def write_precomputed(opener: Callable, names: list[str], out: Path, stride: int) -> None:
    """Writes the precomputed fd/avg JPEG layout (``out/fd/<name>/<i>.jpg``, ``out/avg/...``)."""
    for name in names:
        clip = opener(name)
        gray = clip.read(np.arange(clip.num_frames), gray=True).astype(np.float32)  # [N, H, W]
        frame = np.arange(clip.num_frames)
        fd = np.abs(gray - gray[np.clip(frame - stride, 0, None)])
        window = np.clip(frame[:, None] - np.arange(stride)[None, :], 0, None)  # [N, k]
        avg = gray[window].mean(axis=1)
        for plane, values in (("fd", fd), ("avg", avg)):
            folder = out / plane / name
            folder.mkdir(parents=True)
            for i, image in enumerate(np.rint(values).astype(np.uint8)):
                cv2.imwrite(str(folder / f"{i}.jpg"), image,
                            [cv2.IMWRITE_JPEG_QUALITY, PRECOMPUTED_JPEG_QUALITY])


def write_packed(opener: Callable, names: list[str], out: Path, short_side: int = 0) -> None:
    """Writes a packed store of ``names`` (see tools/pack_dataset.py; ``short_side`` as its
    ``--short-side``, 0 = the decoded size)."""
    from tools.pack_dataset import decode_gray

    with PackedWriter(out) as writer:
        for name in names:
            writer.add(name, decode_gray(opener(name), short_side))


def clip_dataset(cfg: CfgNode, names: list[str], opener: Callable, planes_on_device: bool = False,
                 crop_on_device: bool = False, train: bool = False) -> ClipDataset:
    """A dataset over ``names``: test items of one view (centre crop, centre frames), or with
    ``train`` training items with the config's augmentation (multi-scale crop, flip, colour
    jitter) drawn for epoch 0, so every timed pass loads the same items. ``planes_on_device``:
    its items are the uint8 frame windows; ``crop_on_device`` too: the uncropped frames."""
    data, aug = cfg.DATA, cfg.AUG
    return ClipDataset(names=names, opener=opener, train=train, num_frames=data.NUM_FRAMES,
                       fd_stride=data.FD_STRIDE, input_size=data.INPUT_SIZE, scales=list(aug.SCALES),
                       flip=train and aug.FLIP, color_jitter=aug.COLOR_JITTER if train else 0.0,
                       num_clip=1, num_crop=1, seed=cfg.SEED, lps_level=cfg.LPS.LEVEL, skip_bad=False,
                       planes_on_device=planes_on_device, crop_on_device=crop_on_device)


def jpeg_baseline_item(root: Path, name: str, indices: np.ndarray, size: int) -> np.ndarray:
    """A plain opencv read of the 3T precomputed JPEGs of one clip (gray decode), centre square
    crop resized to ``size`` (bilinear, skipped when the crop has the size already) and the CLIP
    normalisation as one multiply-add: the floor the precomputed reader is compared with."""
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
    out = np.stack(crops)  # [3T, S, S]
    planes = out.reshape(3, len(indices), size, size).transpose(1, 0, 2, 3)  # [T, 3, S, S]
    return planes.astype(np.float32) * np.float32(GRAY_SCALE / PIXEL_MAX) - np.float32(GRAY_OFFSET)


def bench_stages(cfg: CfgNode, frames: np.ndarray, reps: int) -> dict:
    """Milliseconds per clip of the derived pipeline's stages after decoding on the uint8 gray
    frames [U, H, W] of one clip (test view: centre crop, centre frames): the area and bilinear
    resizes, and the float32 reference planes against the uint8 kernel the dataset uses."""
    size, stride, count = cfg.DATA.INPUT_SIZE, cfg.DATA.FD_STRIDE, len(frames)
    indices = clip_dataset(cfg, [], None).frame_indices(count, None)[0]  # centre frames [T]
    frame_ids = np.arange(count)
    box = eval_crop_boxes(frames.shape[1], frames.shape[2], 1)[0]
    crops = [f[box.top:box.top + box.height, box.left:box.left + box.width] for f in frames]
    resized = crop_resize(frames, box, size)  # [U, S, S] uint8, what the dataset computes
    norm = PlaneNorm()
    stages = {
        "resize_area": lambda: [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops],
        "resize_linear": lambda: [cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in crops],
        "crop_resize": lambda: crop_resize(frames, box, size),
        "planes_float": lambda: norm(ifns_planes(resized.astype(np.float32), frame_ids, indices, stride, count)),
        "planes_uint8": lambda: ifns_planes_uint8(resized, frame_ids, indices, stride, count, norm),
    }
    result = {name: 1e3 * min(time_call(fn, torch.device("cpu"), reps, 1))  # fastest call, as the layouts
              for name, fn in stages.items()}
    reference = norm(ifns_planes(resized.astype(np.float32), frame_ids, indices, stride, count))
    result["planes_uint8_max_abs_diff"] = float(np.abs(ifns_planes_uint8(
        resized, frame_ids, indices, stride, count, norm) - reference).max())
    return {"frames": count, "ms_per_clip": result}


def bench_decode(cfg: CfgNode, openers: dict[str, Callable], name: str, reps: int) -> dict:
    """Milliseconds to open one clip and decode the gray frames its test view needs, per video
    backend: the floor of the ``video`` layouts before any crop, resize or plane.

    Args:
        cfg: experiment config (frames, stride).
        openers: layout -> opener; the ``video``, ``video_opencv`` and ``video_luma`` ones are
            timed (the last one's luma planes, before the levels: what ``DATA.CROP_ON_DEVICE``
            workers read).
        name: the clip.
        reps: timed calls (the fastest counts).

    Returns:
        ``{"decode_<layout>": ms, "decode_<layout>_frames": frames decoded}``.
    """
    result = {}
    for layout in ("video", "video_opencv", "video_luma"):
        if layout not in openers:
            continue
        dataset = clip_dataset(cfg, [name], openers[layout])
        count = openers[layout](name).num_frames
        frame_ids = needed_frames(dataset.frame_indices(count, None), cfg.DATA.FD_STRIDE, count)

        def decode(opener: Callable = openers[layout], frame_ids: np.ndarray = frame_ids) -> np.ndarray:
            return opener(name).read_luma(frame_ids)[0]

        result[f"decode_{layout}"] = 1e3 * min(time_call(decode, torch.device("cpu"), reps, SETTING_WARMUP))
        result[f"decode_{layout}_frames"] = len(frame_ids)
    return result


def bench_device_planes(worker: ClipDataset, device_dataset: ClipDataset, reps: int) -> dict:
    """The device step of ``DATA.PLANES_ON_DEVICE`` (and ``DATA.CROP_ON_DEVICE``) for one clip on
    the CPU (one thread): the milliseconds of :class:`DevicePlanes` on sample 0 of
    ``device_dataset``, the bytes of its uint8 item (``item_bytes``), and the largest difference
    to the planes the worker computes otherwise (normalised units, and on the 0..255 scale)."""
    item = device_dataset[0]
    batch = ClipCollate(device_dataset.item_shape, device_dataset.item_dtype,
                        device_dataset.extra_fields)([item])
    norm = device_dataset.plane_norm
    step = DevicePlanes(norm, device_dataset.input_size if device_dataset.crop_on_device else 0)
    cpu = torch.device("cpu")
    seconds = time_call(lambda: step(batch, cpu), cpu, reps, 1)
    planes, expected = step(batch, cpu)[0].numpy(), worker.load(0)
    return {"device_planes_ms": 1e3 * min(seconds), "item_bytes": item["clips"].numel(),
            "device_planes_max_abs_diff": float(np.abs(planes - expected).max()),
            "device_planes_max_abs_diff_levels": float(np.abs(norm.inverse(planes) - norm.inverse(expected)).max())}


def packed_uint8_item(dataset: ClipDataset, index: int) -> np.ndarray:
    """What a worker would do if the planes were computed on the device: read the needed frames
    of a packed sample and crop-resize them, returning uint8 [U, S, S] (no planes, no floats)."""
    clip = dataset.opener(dataset.names[index])
    indices = dataset.frame_indices(clip.num_frames, None)
    frames = clip.read(needed_frames(indices, dataset.fd_stride, clip.num_frames), gray=True)
    box = eval_crop_boxes(frames.shape[1], frames.shape[2], 1)[0]
    return crop_resize(frames, box, dataset.input_size)


@contextlib.contextmanager
def single_thread():
    """Runs the block as a loader worker does: one torch and one opencv thread."""
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)


def time_interleaved(loads: dict[str, Callable[[int], Any]], count: int, reps: int) -> dict[str, dict]:
    """Per-item time of every ``loads[name](i)`` over ``count`` items: one untimed pass each, then
    ``reps`` rounds in which each loader makes one timed pass (the order rotating every round),
    after one untimed load of its last item: a loader worker runs one layout, so a pass should
    not start with the caches the other layouts of this process left (without that load the
    first item of every pass is cold; measured effect on the layouts' ratios up to 8%, in
    docs/performance.md).

    Returns, per name: ``ms_per_clip``, the mean over the items of each item's fastest time (a
    burst of load from other jobs or of hypervisor steal slows single calls, which this discards),
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


def bench_data(cfg: CfgNode, args: argparse.Namespace) -> dict:
    """Per-worker clips/s of every storage layout over the same clips, the plain opencv JPEG
    baseline, workers that only read and crop packed frames (``*_uint8``: the floor of a worker
    without planes) and ``packed_device`` (the input-size packed store with
    ``DATA.PLANES_ON_DEVICE``: the uint8 frame windows a worker returns) and ``video_luma_device``
    (the luma video backend with ``DATA.CROP_ON_DEVICE`` as well: the uncropped luma frames a worker
    returns, when the frames shrink less than 2x to the input), timed interleaved; plus training
    items (``*_train``: the config's multi-scale crop, flip and jitter) of the input-size store
    with the planes on the worker and on the device, and of the decoded-size store with the crop
    on the device too; and the device steps timed on one CPU thread."""
    cfg = data_config(cfg)
    openers, all_names = source_openers(cfg)
    names = all_names[:args.data_clips]
    source = openers.get("frames", next(iter(openers.values())))
    size = cfg.DATA.INPUT_SIZE
    result: dict[str, Any] = {"clips": len(names), "input_size": size, "num_frames": cfg.DATA.NUM_FRAMES,
                              "source_frames": source(names[0]).num_frames,
                              "loadavg_before": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="lps_bench_") as tmp:
        start = time.perf_counter()
        write_precomputed(source, names, Path(tmp) / "precomputed", cfg.DATA.FD_STRIDE)
        write_packed(source, names, Path(tmp) / "packed")
        write_packed(source, names, Path(tmp) / "packed_short", short_side=size)
        logger.info("data: wrote precomputed and packed stores of %d clips in %.1f s", len(names),
                    time.perf_counter() - start)
        layouts = dict(openers)
        layouts["precomputed"] = functools.partial(_open_precomputed, root=Path(tmp) / "precomputed")
        layouts["packed"] = PackedOpener(Path(tmp) / "packed")
        layouts["packed_short"] = PackedOpener(Path(tmp) / "packed_short")
        result["frame_size"] = list(source(names[0]).read(np.array([0]), gray=True).shape[1:])
        box = eval_crop_boxes(*result["frame_size"], 1)[0]  # the test view, as the datasets draw it
        crop_on_device = "video_luma" in openers and box.shrink(size) < AREA_SHRINK
        loads = {layout: clip_dataset(cfg, names, opener).load for layout, opener in layouts.items()}
        precomputed = clip_dataset(cfg, names, layouts["precomputed"])
        indices = [precomputed.frame_indices(precomputed.opener(n).num_frames, None)[0] for n in names]
        root = Path(tmp) / "precomputed"
        loads["jpeg_baseline"] = lambda i: jpeg_baseline_item(root, names[i], indices[i], size)
        for layout in ("packed", "packed_short"):
            loads[f"{layout}_uint8"] = functools.partial(packed_uint8_item,
                                                         clip_dataset(cfg, names, layouts[layout]))
        windows = clip_dataset(cfg, names, layouts["packed_short"], planes_on_device=True)
        loads["packed_device"] = windows.load
        for layout, on_device in (("packed_short_train", False), ("packed_device_train", True)):
            loads[layout] = clip_dataset(cfg, names, layouts["packed_short"], on_device, train=True).load
        if crop_on_device:
            frames = clip_dataset(cfg, names, openers["video_luma"], planes_on_device=True, crop_on_device=True)
            loads["video_luma_device"] = frames.load_item
            loads["packed_crop_device_train"] = clip_dataset(cfg, names, layouts["packed"], True, True,
                                                             train=True).load_item
        with single_thread():
            for layout, timing in time_interleaved(loads, len(names), args.reps).items():
                result[layout] = timing
                logger.info("data %-19s %8.1f clips/s per worker (%.2f ms per clip, median pass %.2f)",
                            layout, timing["clips_per_s"], timing["ms_per_clip"], timing["ms_per_clip_median"])
            result["packed_device"].update(bench_device_planes(
                clip_dataset(cfg, names, layouts["packed_short"]), windows, args.reps))
            logger.info("data packed_device: planes from the windows %.2f ms per clip on one CPU thread",
                        result["packed_device"]["device_planes_ms"])
            if crop_on_device:
                result["video_luma_device"].update(bench_device_planes(
                    clip_dataset(cfg, names, openers["video_luma"]), frames, args.reps))
                logger.info("data video_luma_device: levels, crop, resize and planes %.2f ms per clip "
                            "on one CPU thread (%.2f gray levels from the worker's planes at most)",
                            result["video_luma_device"]["device_planes_ms"],
                            result["video_luma_device"]["device_planes_max_abs_diff_levels"])
            clip = source(names[0])
            result["stages"] = bench_stages(cfg, clip.read(np.arange(clip.num_frames), gray=True), args.reps)
            result["stages"]["ms_per_clip"].update(bench_decode(cfg, openers, names[0], args.reps))
            logger.info("data stages (ms per clip): %s", result["stages"]["ms_per_clip"])
    result["loadavg_after"] = list(os.getloadavg())
    base = result["precomputed"]["clips_per_s"]
    baselines = ("precomputed", "jpeg_baseline")
    result["ratios"] = {f"{layout}_over_precomputed": timing["clips_per_s"] / base
                        for layout, timing in result.items()
                        if isinstance(timing, dict) and "clips_per_s" in timing and layout not in baselines}
    result["ratios"]["precomputed_over_jpeg_baseline"] = base / result["jpeg_baseline"]["clips_per_s"]
    return result


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=None, help="experiment YAML (default: the demo)")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE config overrides")
    parser.add_argument("--what", choices=SECTIONS, default="all",
                        help="what to measure (all = every section; train includes the matmul peak)")
    parser.add_argument("--json", required=True, help="file to write the results to")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions (medians)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="clips per train/eval step (0 = TRAIN.BATCH_SIZE / TEST.BATCH_SIZE)")
    parser.add_argument("--data-clips", type=int, default=DATA_CLIPS, help="clips per data measurement")
    parser.add_argument("--peak-sizes", type=int, nargs="+", default=list(PEAK_SIZES),
                        help="square matmul sides of the peak measurement")
    parser.add_argument("--profile", action="store_true", help="add a per-op profile of one train step")
    parser.add_argument("--compile", action="store_true",
                        help="with --what all, also compare torch.compile (compiling takes minutes on CPU)")
    parser.add_argument("--no-checkpointing", action="store_true",
                        help="skip the activation-checkpointing comparison")
    return parser.parse_args(argv)


def write_json(path: str, results: dict) -> None:
    """Writes ``results`` atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, path)


def run(cfg: CfgNode, args: argparse.Namespace) -> dict:
    """Runs the sections ``args.what`` asks for; returns the results."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    wanted = set(SECTIONS[:-1]) if args.what == "all" else {args.what}
    if device.type == "cpu" and "train" not in wanted:
        keep_freed_memory()  # as the launcher does on CPU (the train section compares first)
    torch.manual_seed(cfg.SEED)
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "dtype": cfg.TRAIN.PRECISION, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "arch": cfg.MODEL.ARCH, "input_size": cfg.DATA.INPUT_SIZE, "num_frames": cfg.DATA.NUM_FRAMES,
        "attn_backend": cfg.MODEL.ATTN_BACKEND, "reps": args.reps, "warmup": args.warmup,
    }
    if args.no_checkpointing:
        wanted.discard("checkpointing")
    if args.what == "all" and not args.compile:
        wanted.discard("compile")
    start = time.perf_counter()
    if "train" in wanted:
        results["train"] = bench_train(cfg, device, args)
    if "checkpointing" in wanted:
        results["checkpointing"] = bench_checkpointing(cfg, device, args)
    if "compile" in wanted:
        results["compile"] = bench_compile(cfg, device, args)
    if "eval" in wanted:
        results["eval"] = bench_eval(cfg, device, args)
    if "attention" in wanted:
        results["attention"] = bench_attention(cfg, device, args)
    if "data" in wanted:
        results["data"] = bench_data(cfg, args)
    results["seconds"] = time.perf_counter() - start
    return results


def main(argv: list[str] | None = None) -> int:
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
    write_json(args.json, results)
    logger.info("benchmark written to %s (%.1f s)", args.json, results["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
