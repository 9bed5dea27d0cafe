"""Triton fused attention for CFSA frame attention with one message key/value.

For every (batch, head) pair the L frame tokens attend to the L frame keys plus one extra key, the
frame's message token (DESIGN.md section 5):

    out = softmax(q @ [k; k_msg]^T * scale) @ [v; v_msg]        # [L, D]

The concatenation ``[k; k_msg]`` is never materialised. The forward kernel starts its online
softmax from the message column (running max = the message score, running sum = 1, accumulator =
``v_msg``), then loops over blocks of frame keys. It stores the per-row log-sum-exp (base 2), which
the backward reuses to recompute probabilities without a second softmax pass.

The backward avoids atomics: one kernel per key block accumulates ``dk``/``dv`` over all query
blocks, one kernel per query block accumulates ``dq`` over all key blocks and also writes that
block's partial sums of ``dk_msg``/``dv_msg``, which torch reduces over the few query blocks.

Block sizes: 64 x 64 query/key tiles with the head dim padded to a power of two (64 -> 64,
80 -> 128) and masked. With ViT token counts (L = 50, 197, 257) a 64-row tile wastes at most
one partial tile per frame, keeps registers of the fp32 accumulator [64, 128] within one CTA of
4 warps, and every ``tl.dot`` operand stays >= 16 in each dimension as Triton requires. Under the
interpreter (CPU, ``TRITON_INTERPRET=1``) the default is 16 x 16, the smallest legal tile, so
that tiny test shapes run several key/query blocks with a partial last one; the interpreter's
cost grows with the number of block operations, not their size. On CUDA the model engineer
benchmarks this kernel against ``torch.nn.functional.scaled_dot_product_attention``; the tile
sizes are the first thing to tune there.

``TRITON_INTERPRET`` is read by ``triton.jit`` when this module is imported, so it must be set
before the first import of this module.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # triton is optional: the model falls back to sdpa
    triton = None
    tl = None

# triton.jit picks compiled or interpreted kernels from this flag when the module is imported
INTERPRETED = triton is not None and bool(triton.knobs.runtime.interpret)

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


if triton is not None:

    @triton.jit
    def _forward_kernel(
        q_ptr, k_ptr, v_ptr, kmsg_ptr, vmsg_ptr, out_ptr, lse_ptr,
        seq_len, head_dim, qk_scale,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
        PRECISION: tl.constexpr, DOT_DTYPE: tl.constexpr,
    ):
        """One program: BLOCK_M query rows of one (batch, head); writes out and base-2 lse."""
        start_m = tl.program_id(0) * BLOCK_M
        head = tl.program_id(1).to(tl.int64)
        seq_base = head * seq_len * head_dim
        offs_m = start_m + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, BLOCK_D)
        mask_m = offs_m < seq_len
        mask_d = offs_d < head_dim

        q = tl.load(q_ptr + seq_base + offs_m[:, None] * head_dim + offs_d[None, :],
                    mask=mask_m[:, None] & mask_d[None, :], other=0.0).to(DOT_DTYPE)  # [BLOCK_M, BLOCK_D]
        k_msg = tl.load(kmsg_ptr + head * head_dim + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        v_msg = tl.load(vmsg_ptr + head * head_dim + offs_d, mask=mask_d, other=0.0).to(tl.float32)

        # the message column initialises the online softmax: max = its score, sum = 1, acc = v_msg
        m_i = tl.sum(q.to(tl.float32) * k_msg[None, :], axis=1) * qk_scale  # [BLOCK_M]
        l_i = tl.full([BLOCK_M], 1.0, dtype=tl.float32)
        acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32) + v_msg[None, :]

        for start_n in range(0, seq_len, BLOCK_N):
            cols = start_n + offs_n
            mask_n = cols < seq_len
            kv_offs = seq_base + cols[:, None] * head_dim + offs_d[None, :]
            kv_mask = mask_n[:, None] & mask_d[None, :]
            k = tl.load(k_ptr + kv_offs, mask=kv_mask, other=0.0).to(DOT_DTYPE)  # [BLOCK_N, BLOCK_D]
            v = tl.load(v_ptr + kv_offs, mask=kv_mask, other=0.0).to(DOT_DTYPE)  # [BLOCK_N, BLOCK_D]
            scores = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # [BLOCK_M, BLOCK_N]
            scores = tl.where(mask_n[None, :], scores, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(scores, axis=1))
            alpha = tl.exp2(m_i - m_new)
            p = tl.exp2(scores - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, axis=1)
            acc = acc * alpha[:, None]
            acc = tl.dot(p.to(DOT_DTYPE), v, acc=acc, input_precision=PRECISION)
            m_i = m_new

        acc = acc / l_i[:, None]
        tl.store(out_ptr + seq_base + offs_m[:, None] * head_dim + offs_d[None, :],
                 acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_d[None, :])
        tl.store(lse_ptr + head * seq_len + offs_m, m_i + tl.log2(l_i), mask=mask_m)

    @triton.jit
    def _backward_dkdv_kernel(
        q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr,
        seq_len, head_dim, qk_scale, scale,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
        PRECISION: tl.constexpr, DOT_DTYPE: tl.constexpr,
    ):
        """One program: BLOCK_N frame keys of one (batch, head); loops over all query blocks."""
        start_n = tl.program_id(0) * BLOCK_N
        head = tl.program_id(1).to(tl.int64)
        seq_base = head * seq_len * head_dim
        offs_n = start_n + tl.arange(0, BLOCK_N)
        offs_m = tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        mask_n = offs_n < seq_len
        mask_d = offs_d < head_dim
        kv_offs = seq_base + offs_n[:, None] * head_dim + offs_d[None, :]
        kv_mask = mask_n[:, None] & mask_d[None, :]

        k = tl.load(k_ptr + kv_offs, mask=kv_mask, other=0.0).to(DOT_DTYPE)  # [BLOCK_N, BLOCK_D]
        v = tl.load(v_ptr + kv_offs, mask=kv_mask, other=0.0).to(DOT_DTYPE)  # [BLOCK_N, BLOCK_D]
        dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
        dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)

        for start_m in range(0, seq_len, BLOCK_M):
            rows = start_m + offs_m
            mask_m = rows < seq_len
            q_offs = seq_base + rows[:, None] * head_dim + offs_d[None, :]
            q_mask = mask_m[:, None] & mask_d[None, :]
            q = tl.load(q_ptr + q_offs, mask=q_mask, other=0.0).to(DOT_DTYPE)  # [BLOCK_M, BLOCK_D]
            do = tl.load(do_ptr + q_offs, mask=q_mask, other=0.0).to(DOT_DTYPE)  # [BLOCK_M, BLOCK_D]
            lse = tl.load(lse_ptr + head * seq_len + rows, mask=mask_m, other=0.0)  # [BLOCK_M]
            delta = tl.load(delta_ptr + head * seq_len + rows, mask=mask_m, other=0.0)  # [BLOCK_M]
            scores_t = tl.dot(k, tl.trans(q), input_precision=PRECISION) * qk_scale  # [BLOCK_N, BLOCK_M]
            p_t = tl.exp2(scores_t - lse[None, :])
            p_t = tl.where(mask_m[None, :], p_t, 0.0)
            dv = tl.dot(p_t.to(DOT_DTYPE), do, acc=dv, input_precision=PRECISION)
            dp_t = tl.dot(v, tl.trans(do), input_precision=PRECISION)  # [BLOCK_N, BLOCK_M]
            ds_t = p_t * (dp_t - delta[None, :])
            dk = tl.dot(ds_t.to(DOT_DTYPE), q, acc=dk, input_precision=PRECISION)

        dk = dk * scale
        tl.store(dk_ptr + kv_offs, dk.to(dk_ptr.dtype.element_ty), mask=kv_mask)
        tl.store(dv_ptr + kv_offs, dv.to(dv_ptr.dtype.element_ty), mask=kv_mask)

    @triton.jit
    def _backward_dq_kernel(
        q_ptr, k_ptr, v_ptr, kmsg_ptr, vmsg_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr,
        dkmsg_part_ptr, dvmsg_part_ptr,
        seq_len, head_dim, num_m_blocks, qk_scale, scale,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
        PRECISION: tl.constexpr, DOT_DTYPE: tl.constexpr,
    ):
        """One program: BLOCK_M query rows of one (batch, head); writes dq and the block's
        partial message gradients (sums over its rows, fp32, dk_msg not yet scaled)."""
        pid_m = tl.program_id(0)
        start_m = pid_m * BLOCK_M
        head = tl.program_id(1).to(tl.int64)
        seq_base = head * seq_len * head_dim
        offs_m = start_m + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, BLOCK_D)
        mask_m = offs_m < seq_len
        mask_d = offs_d < head_dim
        q_offs = seq_base + offs_m[:, None] * head_dim + offs_d[None, :]
        q_mask = mask_m[:, None] & mask_d[None, :]

        q = tl.load(q_ptr + q_offs, mask=q_mask, other=0.0).to(DOT_DTYPE)  # [BLOCK_M, BLOCK_D]
        do = tl.load(do_ptr + q_offs, mask=q_mask, other=0.0).to(DOT_DTYPE)  # [BLOCK_M, BLOCK_D]
        lse = tl.load(lse_ptr + head * seq_len + offs_m, mask=mask_m, other=0.0)  # [BLOCK_M]
        delta = tl.load(delta_ptr + head * seq_len + offs_m, mask=mask_m, other=0.0)  # [BLOCK_M]
        dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

        for start_n in range(0, seq_len, BLOCK_N):
            cols = start_n + offs_n
            mask_n = cols < seq_len
            kv_offs = seq_base + cols[:, None] * head_dim + offs_d[None, :]
            kv_mask = mask_n[:, None] & mask_d[None, :]
            k = tl.load(k_ptr + kv_offs, mask=kv_mask, other=0.0).to(DOT_DTYPE)  # [BLOCK_N, BLOCK_D]
            v = tl.load(v_ptr + kv_offs, mask=kv_mask, other=0.0).to(DOT_DTYPE)  # [BLOCK_N, BLOCK_D]
            scores = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # [BLOCK_M, BLOCK_N]
            p = tl.exp2(scores - lse[:, None])
            p = tl.where(mask_n[None, :], p, 0.0)
            dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)  # [BLOCK_M, BLOCK_N]
            ds = p * (dp - delta[:, None])
            dq = tl.dot(ds.to(DOT_DTYPE), k, acc=dq, input_precision=PRECISION)

        # the message column: one extra key/value shared by all rows of this (batch, head)
        k_msg = tl.load(kmsg_ptr + head * head_dim + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        v_msg = tl.load(vmsg_ptr + head * head_dim + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        q32 = q.to(tl.float32)
        do32 = do.to(tl.float32)
        p_msg = tl.exp2(tl.sum(q32 * k_msg[None, :], axis=1) * qk_scale - lse)  # [BLOCK_M]
        p_msg = tl.where(mask_m, p_msg, 0.0)
        ds_msg = p_msg * (tl.sum(do32 * v_msg[None, :], axis=1) - delta)  # [BLOCK_M]
        dq = (dq + ds_msg[:, None] * k_msg[None, :]) * scale
        tl.store(dq_ptr + q_offs, dq.to(dq_ptr.dtype.element_ty), mask=q_mask)

        part_offs = (head * num_m_blocks + pid_m) * head_dim + offs_d
        tl.store(dkmsg_part_ptr + part_offs, tl.sum(ds_msg[:, None] * q32, axis=0), mask=mask_d)
        tl.store(dvmsg_part_ptr + part_offs, tl.sum(p_msg[:, None] * do32, axis=0), mask=mask_d)


def _tile_sizes(block_m: int | None, block_n: int | None) -> tuple[int, int]:
    """Query/key tile sizes: explicit values, else the interpreter or the compiled default."""
    default = (INTERPRET_BLOCK, INTERPRET_BLOCK) if INTERPRETED else (GPU_BLOCK_M, GPU_BLOCK_N)
    return block_m or default[0], block_n or default[1]


def _precision(dtype: torch.dtype) -> str:
    """fp32 inputs use exact ieee dots (no tf32 rounding); half types use tensor cores as is."""
    return "ieee" if dtype == torch.float32 else "tf32"


def _dot_dtype(dtype: torch.dtype) -> "tl.dtype":
    """Operand dtype of the kernels' ``tl.dot``: the input dtype, except in the interpreter.

    The CPU interpreter cannot multiply fp16/bf16 blocks (its numpy matmul misreads them), so
    there operands are upcast to fp32: accumulation stays fp32, but the half-precision rounding
    of the probabilities that the compiled kernel does is skipped.
    """
    if INTERPRETED:
        return tl.float32
    return {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}[dtype]


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
        _forward_kernel[grid](
            q, k, v, k_msg, v_msg, out, lse,
            seq_len, head_dim, scale * LOG2_E,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d,
            PRECISION=_precision(q.dtype), DOT_DTYPE=_dot_dtype(q.dtype), **_kernel_options(q.dtype),
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
        precision = _precision(q.dtype)
        dot_dtype = _dot_dtype(q.dtype)
        options = _kernel_options(q.dtype)
        _backward_dkdv_kernel[(triton.cdiv(seq_len, block_n), heads)](
            q, k, v, grad_out, lse, delta, dk, dv,
            seq_len, head_dim, scale * LOG2_E, scale,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d,
            PRECISION=precision, DOT_DTYPE=dot_dtype, **options,
        )
        _backward_dq_kernel[(num_m_blocks, heads)](
            q, k, v, k_msg, v_msg, grad_out, lse, delta, dq, dkmsg_part, dvmsg_part,
            seq_len, head_dim, num_m_blocks, scale * LOG2_E, scale,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d,
            PRECISION=precision, DOT_DTYPE=dot_dtype, **options,
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
