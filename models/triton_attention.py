"""Triton fused attention for CFSA frame attention with one message key/value.

For every (batch, head) pair the L frame tokens attend to the L frame keys plus one extra key, the
frame's message token (DESIGN.md section 5):

    out = softmax(q @ [k; k_msg]^T * scale) @ [v; v_msg]        # [L, D]

This module holds the public entry points, the torch reference and the autograd function that
launches the kernels of :mod:`models.triton_kernels` (how forward and backward avoid the
concatenation and atomics is described there).

Block sizes: 64 x 64 query/key tiles with the head dim padded to a power of two (64 -> 64,
80 -> 128) and masked. With ViT token counts (L = 50, 197, 257) a 64-row tile wastes at most
one partial tile per frame, keeps registers of the fp32 accumulator [64, 128] within one CTA of
4 warps, and every ``tl.dot`` operand stays >= 16 in each dimension as Triton requires. Under the
interpreter (CPU, ``TRITON_INTERPRET=1``) the default is 16 x 16, the smallest legal tile, so
that tiny test shapes run several key/query blocks with a partial last one; the interpreter's
cost grows with the number of block operations, not their size. On CUDA the model engineer
benchmarks this kernel against ``torch.nn.functional.scaled_dot_product_attention``; the tile
sizes are the first thing to tune there.

``TRITON_INTERPRET`` is read by ``triton.jit`` when :mod:`models.triton_kernels` is imported, which
this module does, so it must be set before the first import of this module.
"""

from __future__ import annotations

import torch

from models import triton_kernels
from models.triton_kernels import INTERPRETED, dot_dtype, dot_precision, triton

LOG2_E = 1.4426950408889634  # log2(e): the kernels use exp2, so scores are scaled by log2(e)
GPU_BLOCK_M = 64  # query rows per tile on CUDA
GPU_BLOCK_N = 64  # key rows per tile on CUDA
INTERPRET_BLOCK = 16  # tile size under the CPU interpreter (smallest size tl.dot accepts)
MIN_DOT_SIZE = 16  # smallest tile side tl.dot accepts (tiles and the padded head dim)
GPU_NUM_WARPS = 4  # warps per program on CUDA
GPU_NUM_STAGES = 2  # software pipelining stages for the key loop on CUDA
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def is_available(device: torch.device) -> bool:
    """Tells whether the Triton kernel can run on ``device``.

    Args:
        device: device of the attention inputs.

    Returns:
        True when triton imports and the device is CUDA, or the interpreter was enabled
        (``TRITON_INTERPRET=1``) when this module was imported, so kernels run on CPU tensors.
    """
    if triton is None:
        return False
    return torch.device(device).type == "cuda" or INTERPRETED


def reference_frame_message_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_msg: torch.Tensor,
    v_msg: torch.Tensor,
    scale: float | None = None,
) -> torch.Tensor:
    """Plain torch frame + message attention (concatenation and softmax), the test reference.

    Args:
        q: queries [N, H, L, D].
        k: frame keys [N, H, L, D].
        v: frame values [N, H, L, D].
        k_msg: message key [N, H, 1, D].
        v_msg: message value [N, H, 1, D].
        scale: softmax scale; defaults to D ** -0.5.

    Returns:
        Attention output [N, H, L, D] in q's dtype.
    """
    if scale is None:
        scale = q.shape[-1] ** -0.5
    keys = torch.cat([k, k_msg], dim=2)  # [N, H, L + 1, D]
    values = torch.cat([v, v_msg], dim=2)  # [N, H, L + 1, D]
    weights = torch.softmax(q @ keys.transpose(-2, -1) * scale, dim=-1)  # [N, H, L, L + 1]
    return weights @ values


def _tile_sizes(block_m: int | None, block_n: int | None) -> tuple[int, int]:
    """Query/key tile sizes: explicit values, else the interpreter or the compiled default."""
    default = (INTERPRET_BLOCK, INTERPRET_BLOCK) if INTERPRETED else (GPU_BLOCK_M, GPU_BLOCK_N)
    return block_m or default[0], block_n or default[1]


def _kernel_options(dtype: torch.dtype) -> dict[str, int]:
    """Launch options of the compiled kernels (the interpreter drops them).

    fp32 tiles with a head dim padded to 128 take twice the shared memory of half ones, so they
    are not double-buffered.
    """
    stages = 1 if dtype == torch.float32 else GPU_NUM_STAGES
    return {"num_warps": GPU_NUM_WARPS, "num_stages": stages}


class _FrameMessageAttention(torch.autograd.Function):
    """Autograd wrapper around the Triton kernels; inputs are contiguous [N*H, L, D] / [N*H, D]."""

    @staticmethod
    def forward(
        ctx,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        k_msg: torch.Tensor,
        v_msg: torch.Tensor,
        scale: float,
        block_m: int,
        block_n: int,
    ) -> torch.Tensor:
        heads, seq_len, head_dim = q.shape
        block_d = max(triton.next_power_of_2(head_dim), MIN_DOT_SIZE)
        out = torch.empty_like(q)
        lse = torch.empty((heads, seq_len), device=q.device, dtype=torch.float32)  # base-2 lse
        grid = (triton.cdiv(seq_len, block_m), heads)
        triton_kernels.forward_kernel[grid](
            q, k, v, k_msg, v_msg, out, lse,
            seq_len, head_dim, scale * LOG2_E,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d,
            PRECISION=dot_precision(q.dtype), DOT_DTYPE=dot_dtype(q.dtype), **_kernel_options(q.dtype),
        )
        ctx.save_for_backward(q, k, v, k_msg, v_msg, out, lse)
        ctx.scale = scale
        ctx.blocks = (block_m, block_n, block_d)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        q, k, v, k_msg, v_msg, out, lse = ctx.saved_tensors
        block_m, block_n, block_d = ctx.blocks
        scale = ctx.scale
        heads, seq_len, head_dim = q.shape
        grad_out = grad_out.contiguous()
        delta = (out.float() * grad_out.float()).sum(dim=-1)  # [N*H, L]: rowsum(dO * O)
        dq = torch.empty_like(q)
        dk = torch.empty_like(k)
        dv = torch.empty_like(v)
        num_m_blocks = triton.cdiv(seq_len, block_m)
        dkmsg_part = torch.empty((heads, num_m_blocks, head_dim), device=q.device, dtype=torch.float32)
        dvmsg_part = torch.empty_like(dkmsg_part)
        precision = dot_precision(q.dtype)
        operand_dtype = dot_dtype(q.dtype)
        options = _kernel_options(q.dtype)
        triton_kernels.backward_dkdv_kernel[(triton.cdiv(seq_len, block_n), heads)](
            q, k, v, grad_out, lse, delta, dk, dv,
            seq_len, head_dim, scale * LOG2_E, scale,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d,
            PRECISION=precision, DOT_DTYPE=operand_dtype, **options,
        )
        triton_kernels.backward_dq_kernel[(num_m_blocks, heads)](
            q, k, v, k_msg, v_msg, grad_out, lse, delta, dq, dkmsg_part, dvmsg_part,
            seq_len, head_dim, num_m_blocks, scale * LOG2_E, scale,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d,
            PRECISION=precision, DOT_DTYPE=operand_dtype, **options,
        )
        dk_msg = (dkmsg_part.sum(dim=1) * scale).to(k_msg.dtype)  # [N*H, D]
        dv_msg = dvmsg_part.sum(dim=1).to(v_msg.dtype)  # [N*H, D]
        return dq, dk, dv, dk_msg, dv_msg, None, None, None


def frame_message_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_msg: torch.Tensor,
    v_msg: torch.Tensor,
    scale: float | None = None,
    *,
    block_m: int | None = None,
    block_n: int | None = None,
) -> torch.Tensor:
    """Fused frame + message attention (Triton forward and backward).

    Equals ``reference_frame_message_attention`` without materialising the key/value
    concatenation. Inputs may be non-contiguous; k, v and the message tensors are cast to q's
    dtype. Accumulation is fp32 for every input dtype.

    Args:
        q: queries [N, H, L, D] (fp32, fp16 or bf16).
        k: frame keys [N, H, L, D].
        v: frame values [N, H, L, D].
        k_msg: message key [N, H, 1, D].
        v_msg: message value [N, H, 1, D].
        scale: softmax scale; defaults to D ** -0.5.
        block_m: query rows per tile (power of two >= 16); default 64 compiled, 16 interpreted.
        block_n: key rows per tile (power of two >= 16); default 64 compiled, 16 interpreted.

    Returns:
        Attention output [N, H, L, D] in q's dtype.
    """
    if triton is None:
        raise RuntimeError("triton is not installed; use the sdpa attention backend")
    batch, num_heads, seq_len, head_dim = q.shape
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} must match q {tuple(q.shape)}")
    msg_shape = (batch, num_heads, 1, head_dim)
    if tuple(k_msg.shape) != msg_shape or tuple(v_msg.shape) != msg_shape:
        raise ValueError(f"k_msg {tuple(k_msg.shape)} and v_msg {tuple(v_msg.shape)} must be {msg_shape}")
    if q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"q dtype {q.dtype} is not supported; use one of {SUPPORTED_DTYPES}")
    if scale is None:
        scale = head_dim ** -0.5
    block_m, block_n = _tile_sizes(block_m, block_n)
    for tile in (block_m, block_n):
        if tile < MIN_DOT_SIZE or tile & (tile - 1):
            raise ValueError(f"tile size {tile} must be a power of two >= {MIN_DOT_SIZE}")
    heads = batch * num_heads

    def flat(x: torch.Tensor, rows: int) -> torch.Tensor:
        return x.to(q.dtype).reshape(heads, rows, head_dim).contiguous()

    out = _FrameMessageAttention.apply(
        flat(q, seq_len), flat(k, seq_len), flat(v, seq_len),
        flat(k_msg, 1).squeeze(1), flat(v_msg, 1).squeeze(1),  # [N*H, D]
        float(scale), block_m, block_n,
    )  # [N*H, L, D]
    return out.view(batch, num_heads, seq_len, head_dim)
