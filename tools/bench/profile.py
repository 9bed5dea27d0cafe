"""Where the time of a train step goes (``--profile``): per-op self times by kind, and the AdamW
implementations side by side."""
from __future__ import annotations

import logging
import statistics
import time
from typing import Any, Callable

import torch

from tools.bench.timing import synchronize, time_call

logger = logging.getLogger(__name__)

PROFILE_ROWS = 15
PROFILE_STEPS = 3  # train steps averaged by the profile
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul",
              "aten::baddbmm", "aten::convolution", "aten::_convolution", "aten::mkldnn_convolution")
ATTENTION_OPS = ("aten::_scaled_dot_product_flash_attention_for_cpu",
                 "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
                 "aten::_scaled_dot_product_flash_attention",
                 "aten::_scaled_dot_product_efficient_attention",
                 "aten::_scaled_dot_product_cudnn_attention")
COPY_OPS = ("aten::copy_", "aten::cat", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::fill_",
            "aten::zero_")
GRAD_FILL = 1e-3  # the gradients the optimizers are timed on (normal floats, a typical size)
OPTIMIZER_VARIANTS = ("for-loop", "foreach", "fused")  # torch.optim.AdamW implementations


def profile_step(step: Callable[[], Any], device: torch.device, rows: int = PROFILE_ROWS) -> dict[str, Any]:
    """Where the time of the whole train step (forward, backward, optimizer, scheduler) goes, per
    step over ``PROFILE_STEPS`` steps: top ops by self time and a summary by kind. ``wall_ms``
    beside ``total_self_ms`` shows how much of the wall time the profile accounts for (without
    shapes recorded the profiler adds little).

    Args:
        step: one train step (a :class:`~tools.bench.train.TrainerStep`).
        device: the device of the run.
        rows: ops in the table.
    """
    use_cuda = device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU]
    if use_cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(PROFILE_STEPS):
            step()
        synchronize(device)
        wall_ms = 1e3 * (time.perf_counter() - start) / PROFILE_STEPS
    averages = prof.key_averages()

    def self_us(event) -> float:
        return event.self_device_time_total if use_cuda else event.self_cpu_time_total

    total = sum(self_us(e) for e in averages) or 1.0
    table = sorted(averages, key=self_us, reverse=True)[:rows]
    per_step = 1e3 * PROFILE_STEPS  # microseconds over all steps -> milliseconds per step
    kinds = {"matmul": 0.0, "attention": 0.0, "copy": 0.0, "other": 0.0}
    for event in averages:
        kind = ("matmul" if event.key in MATMUL_OPS else "attention" if event.key in ATTENTION_OPS
                else "copy" if event.key in COPY_OPS else "other")
        kinds[kind] += self_us(event)
    return {
        "steps": PROFILE_STEPS, "wall_ms": wall_ms, "total_self_ms": total / per_step,
        "by_kind_pct": {k: round(100.0 * v / total, 1) for k, v in kinds.items()},
        "top_ops": [{"op": e.key, "self_ms": round(self_us(e) / per_step, 2), "calls": e.count // PROFILE_STEPS,
                     "pct": round(100.0 * self_us(e) / total, 1)} for e in table],
    }


def time_optimizer_variants(optimizer: torch.optim.Optimizer, device: torch.device, reps: int) -> dict[str, Any]:
    """Seconds per AdamW step of each implementation on the same parameter groups, on constant
    gradients (see :func:`tools.bench.train.time_optimizer_step`). The parameters move a little.

    Args:
        optimizer: the run's optimizer (its parameter groups).
        device: the device of the run.
        reps: timed steps (after one untimed).
    """
    groups = [{k: v for k, v in group.items() if k not in ("foreach", "fused")} for group in optimizer.param_groups]
    params = [p for group in groups for p in group["params"]]
    for p in params:
        p.grad = torch.full_like(p, GRAD_FILL)
    result: dict[str, Any] = {}
    try:
        for variant in OPTIMIZER_VARIANTS:
            try:
                candidate = torch.optim.AdamW(groups, foreach=variant == "foreach", fused=variant == "fused")
                times = time_call(candidate.step, device, reps, warmup=1)
            except (RuntimeError, ValueError) as exc:  # an implementation this device lacks
                result[variant] = {"error": str(exc).splitlines()[0]}
                continue
            result[variant] = {"step_s": statistics.median(times)}
            logger.info("optimizer AdamW %s: %.3f s per step", variant, result[variant]["step_s"])
    finally:
        for p in params:
            p.grad = None
    return result
