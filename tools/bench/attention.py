"""The attention section: the model's frame attention with the message token (the CFSA hot path)
per backend (math, sdpa, triton), and PyTorch's fused kernel against the explicit formula on every
attention shape of the model."""
from __future__ import annotations

import argparse
import logging
import statistics
from typing import Any

import torch
import torch.nn.functional as F
from yacs.config import CfgNode

from models import clip_size
from models.attention import BACKENDS, Attention, math_attention, uses_formula
from tools.bench.timing import time_call
from trainers.precision import PRECISION_DTYPES, autocast_context

logger = logging.getLogger(__name__)


def bench_attention(cfg: CfgNode, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    """Frame attention with the message token (the CFSA hot path) per backend, forward+backward.

    Args:
        cfg: experiment config (model size, input size, frames, precision).
        device: device of the run.
        args: ``batch_size``, ``reps`` and ``warmup``.

    Returns:
        ``shape``, per backend ``{"available", "kernel", "fwd_s", "fwd_bwd_s"}`` (triton:
        ``{"available": False}`` where it cannot run) and ``kernels`` (:func:`bench_attention_kernels`).
    """
    size = clip_size(cfg)
    batch = args.batch_size or cfg.TRAIN.BATCH_SIZE
    tokens = 1 + (cfg.DATA.INPUT_SIZE // size.patch_size) ** 2
    n = batch * cfg.DATA.NUM_FRAMES
    shapes = {"sequences": n, "tokens": tokens, "width": size.width, "heads": size.heads}
    result: dict[str, Any] = {"shape": shapes}
    generator = torch.Generator().manual_seed(cfg.SEED)
    x = torch.randn(n, tokens, size.width, generator=generator).to(device).requires_grad_()
    extra = torch.randn(n, 1, size.width, generator=generator).to(device).requires_grad_()
    for backend in BACKENDS:
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
                            args: argparse.Namespace) -> dict[str, Any]:
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
    """Which kernel the frame attention of ``backend`` runs: formula, torch_fused or triton.

    Args:
        backend: ``MODEL.ATTN_BACKEND`` value (math, sdpa, triton).
        device: device of the run.
        precision: ``TRAIN.PRECISION``.
    """
    if backend == "triton" and triton_available(device):
        return "triton"
    if uses_formula(backend, device, PRECISION_DTYPES[precision]):
        return "formula"
    return "torch_fused"


def triton_available(device: torch.device) -> bool:
    """Whether the project's Triton kernel can run on ``device`` (False without triton installed).

    Args:
        device: device of the run.
    """
    try:
        from models import triton_attention
    except ImportError:
        return False
    return bool(triton_attention.is_available(device))
