"""Mixed precision through ``torch.amp``: one helper makes the autocast context, a grad scaler
exists only for fp16."""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_context(precision: str, device: torch.device) -> ContextManager:
    """The context under which forward passes run.

    Args:
        precision: ``fp32`` (no autocast), ``bf16`` or ``fp16``.
        device: the device the model runs on (its type selects the autocast backend).

    Returns:
        ``torch.autocast`` for bf16/fp16, a null context for fp32.
    """
    if precision not in PRECISION_DTYPES:
        raise ValueError(f"unknown precision {precision!r}; expected one of {sorted(PRECISION_DTYPES)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISION_DTYPES[precision])


def build_grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A dynamic loss scaler for fp16, ``None`` otherwise (bf16 and fp32 need none).

    Args:
        precision: ``fp32``, ``bf16`` or ``fp16``.
        device: the training device.
    """
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)
