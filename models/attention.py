"""The one multi-head attention module of the model, with interchangeable kernels.

Every attention of MSPNet (CFSA frame attention with its message token, message attention across
frames, temporal fusion blocks, CLIP text blocks, prompt cross-attention) and of the STPrivacy
encoder (tubelet blocks, whose dropped tokens an additive ``key_mask`` hides) is an :class:`Attention`.
Its parameters carry the names of ``torch.nn.MultiheadAttention`` (``in_proj_weight``,
``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``) so CLIP weights load unchanged. Tensors
are batch-first.

Backends (``MODEL.ATTN_BACKEND``):
    ``sdpa``: ``F.scaled_dot_product_attention`` (FlashAttention / cuDNN / memory-efficient
    kernels on GPU, a fused kernel on CPU). On CPU in bf16/fp16 the explicit formula of ``math``
    is used instead: there PyTorch's fused CPU kernel was 3.0x slower forward + backward on the
    ViT-B/16 frame attention and 4.4x on the text tower's, while the message and temporal
    attentions over T = 8 frames take about 0.1-0.2 ms either way (``tools/benchmark.py --what
    attention``, ``attention.kernels``, ``docs/performance.md``). The formula rounds the scores
    to bf16 before the softmax, which doubles the (bf16-sized) error of the output against an
    fp64 reference compared with the fused kernel's fp32 accumulation. In fp32 the two are close
    in speed and the fused kernel stays.
    ``math``: explicit softmax, the reference the tests compare against.
    ``triton``: the project's fused frame attention with one extra message key/value
    (``models.triton_attention``); other attentions, and devices where the kernel is not
    available, use ``sdpa``.
"""
from __future__ import annotations

import functools
import importlib
import logging
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

logger = logging.getLogger(__name__)

BACKENDS = ("sdpa", "math", "triton")
CPU_MATH_DTYPES = (torch.bfloat16, torch.float16)  # where ``sdpa`` on CPU uses the formula
TRITON_MODULE = "models.triton_attention"


@functools.lru_cache(maxsize=None)
def _triton_kernels(device: str) -> ModuleType | None:
    """The Triton kernel module when it can run on ``device``; logs once per device when not."""
    try:
        module = importlib.import_module(TRITON_MODULE)
    except ImportError as exc:
        logger.warning("attention backend triton: %s cannot be imported (%s); using sdpa",
                       TRITON_MODULE, exc)
        return None
    if not module.is_available(torch.device(device)):
        logger.warning("attention backend triton: not available on %s; using sdpa", device)
        return None
    return module


def uses_formula(backend: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether attention of ``backend`` (other than the Triton frame kernel) computes the explicit
    formula :func:`math_attention` for tensors of ``dtype`` on ``device`` (see the module docstring)."""
    return backend == "math" or (device.type == "cpu" and dtype in CPU_MATH_DTYPES)


def math_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = False,
                   mask: Tensor | None = None) -> Tensor:
    """Reference attention: softmax(q k^T / sqrt(D) + mask) v.

    Args:
        q: queries [N, H, Lq, D].
        k: keys [N, H, Lk, D].
        v: values [N, H, Lk, D].
        causal: query i attends to keys 0..i only (Lq == Lk).
        mask: additive scores [N, 1, Lq or 1, Lk] (broadcast over heads), or None.

    Returns:
        [N, H, Lq, D].
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # [N, H, Lq, Lk]
    if mask is not None:
        scores = scores + mask
    if causal:
        future = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return scores.softmax(dim=-1) @ v


class Attention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention`` parameter names, batch-first.

    Args:
        dim: model width (queries, keys, values and output).
        num_heads: heads; ``dim`` must be divisible by it.
        bias: bias on the q/k/v input projection (the output projection always has one).
        backend: ``sdpa``, ``math`` or ``triton`` (see the module docstring).
    """

    def __init__(self, dim: int, num_heads: int, *, bias: bool = True, backend: str = "sdpa") -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        if backend not in BACKENDS:
            raise ValueError(f"attention backend {backend!r} is not one of {BACKENDS}")
        self.num_heads = num_heads
        self.backend = backend
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim)) if bias else None
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # [N, L, dim] -> [N, H, L, D]

    def _kernel(self, q: Tensor, k: Tensor, v: Tensor, causal: bool, mask: Tensor | None = None) -> Tensor:
        if mask is not None:
            mask = mask.unsqueeze(1).to(q.dtype)  # [N, Lq or 1, Lk] -> [N, 1, Lq or 1, Lk]: all heads
        if uses_formula(self.backend, q.device, q.dtype):
            return math_attention(q, k, v, causal, mask)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)

    def forward(self, x: Tensor, context: Tensor | None = None, *, extra: Tensor | None = None,
                causal: bool = False, key_mask: Tensor | None = None) -> Tensor:
        """Attention of the tokens ``x`` over ``context`` (default: ``x`` itself).

        Args:
            x: queries [N, L, dim].
            context: keys/values source [N, S, dim]; ``None`` = self-attention.
            extra: one more key/value token per sequence [N, 1, dim] (the CFSA message token),
                attended to by the L queries; its own output is not computed.
            causal: causal mask (CLIP text); self-attention only.
            key_mask: additive attention scores [N, L, S] (per query) or [N, 1, S] (the same for
                every query), broadcast over the heads: 0 lets a query see a key, ``-inf`` hides it
                (its weight is exactly 0); every query must keep at least one finite entry. Used
                by the token selection of :mod:`models.token_select` (DynamicViT's attention
                masking); not with ``extra`` or ``causal``.

        Returns:
            [N, L, dim].

        Raises:
            ValueError: ``extra`` together with ``context``, ``causal`` or ``key_mask``, or
                ``key_mask`` with ``causal``.
        """
        if key_mask is not None and (extra is not None or causal):
            raise ValueError("key_mask is for attention without the extra token or the causal mask")
        if extra is not None:
            if context is not None or causal:
                raise ValueError("the extra key/value token is for self-attention without a causal mask")
            return self._frame_attention(x, extra)
        if context is None:
            q, k, v = self._qkv(x)
        else:
            dim = x.shape[-1]
            q = self._heads(self._linear(x, 0, dim))
            k, v = map(self._heads, self._linear(context, dim, 3 * dim).chunk(2, dim=-1))
        return self._output(self._kernel(q, k, v, causal, key_mask))

    def _frame_attention(self, x: Tensor, extra: Tensor) -> Tensor:
        """Tokens x [N, L, dim] attend over themselves plus one extra token [N, 1, dim] -> [N, L, dim]."""
        kernels = _triton_kernels(str(x.device)) if self.backend == "triton" else None
        if kernels is not None:  # fused kernel: the extra key/value is never concatenated
            dim = x.shape[-1]
            q, k, v = self._qkv(x)
            k_msg, v_msg = map(self._heads, self._linear(extra, dim, 3 * dim).chunk(2, dim=-1))
            return self._output(kernels.frame_message_attention(q, k, v, k_msg, v_msg))
        # one projection of the L + 1 tokens (autocast casts the weight once, its gradient is one
        # GEMM); the extra token's own query row is dropped
        q, k, v = self._qkv(torch.cat([x, extra], dim=1))  # [N, H, L + 1, D] each
        return self._output(self._kernel(q[:, :, :x.shape[1]], k, v, False))

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Self-attention projections of x [N, L, dim] -> q, k, v [N, H, L, D]."""
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        return self._heads(q), self._heads(k), self._heads(v)

    def _output(self, out: Tensor) -> Tensor:
        return self.out_proj(out.transpose(1, 2).flatten(-2))  # [N, H, L, D] -> [N, L, dim]

    def _linear(self, x: Tensor, start: int, stop: int) -> Tensor:
        bias = None if self.in_proj_bias is None else self.in_proj_bias[start:stop]
        return F.linear(x, self.in_proj_weight[start:stop], bias)
