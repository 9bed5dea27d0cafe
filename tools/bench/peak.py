"""FLOPs and the device's dense matmul peak: what model FLOP utilisation (MFU) divides."""
from __future__ import annotations

import logging
import statistics
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from tools.bench.timing import time_call_cpu

logger = logging.getLogger(__name__)

PEAK_SIZES = (2048, 4096)  # square matmul sides of the peak measurement (best median wins)
PEAK_REPS = 3


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
    """FLOPs of one call of ``fn`` counted by ``FlopCounterMode`` (matmuls, convolutions, attention).

    Args:
        fn: the call to count (run once).
    """
    counter = FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOP_FORMULAS)
    with counter:
        fn()
    return int(counter.get_total_flops())


def measure_matmul_peak(device: torch.device, dtype: torch.dtype, sizes: tuple[int, ...] = PEAK_SIZES,
                        reps: int = PEAK_REPS) -> dict[str, Any]:
    """Dense matmul FLOP/s of square ``n x n`` products: the best median over ``sizes``.

    Args:
        device: the device to measure.
        dtype: the operands' dtype (the run's precision).
        sizes: matrix sides.
        reps: timed products per size (after one untimed).

    Returns:
        ``{"flops": best, "by_size": {n: flops}, "flops_per_cpu_s": best per CPU-second,
        "by_size_per_cpu_s": {n: ...}}``.
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
