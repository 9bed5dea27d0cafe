"""Triton kernels of the frame + message attention (:mod:`models.triton_attention` launches them).

For every (batch, head) pair the L frame tokens attend to the L frame keys plus one extra key, the
frame's message token. The concatenation ``[k; k_msg]`` is never materialised. The forward kernel
starts its online softmax from the message column (running max = the message score, running
sum = 1, accumulator = ``v_msg``), then loops over blocks of frame keys. It stores the per-row
log-sum-exp (base 2), which the backward reuses to recompute probabilities without a second
softmax pass.

The backward avoids atomics: one kernel per key block accumulates ``dk``/``dv`` over all query
blocks, one kernel per query block accumulates ``dq`` over all key blocks and also writes that
block's partial sums of ``dk_msg``/``dv_msg``, which torch reduces over the few query blocks.

Every kernel takes contiguous ``[N*H, L, D]`` tensors (``[N*H, D]`` for the message), a
``qk_scale`` already multiplied by log2(e) (the kernels use ``exp2``), tile sizes ``BLOCK_M`` x
``BLOCK_N`` with the head dim padded to ``BLOCK_D`` and masked, the ``tl.dot`` input precision and
operand dtype. The grid is (query or key blocks, N*H).

``TRITON_INTERPRET`` is read by ``triton.jit`` when this module is imported, so it must be set
before the first import of this module (or of :mod:`models.triton_attention`, which imports it).
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


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` input precision: fp32 inputs use exact ieee dots (no tf32 rounding); half types
    use tensor cores as is.

    Args:
        dtype: dtype of the attention inputs.
    """
    return "ieee" if dtype == torch.float32 else "tf32"


def dot_dtype(dtype: torch.dtype) -> "tl.dtype":
    """Operand dtype of the kernels' ``tl.dot``: the input dtype, except in the interpreter.

    The CPU interpreter cannot multiply fp16/bf16 blocks (its numpy matmul misreads them), so
    there operands are upcast to fp32: accumulation stays fp32, but the half-precision rounding
    of the probabilities that the compiled kernel does is skipped.

    Args:
        dtype: dtype of the attention inputs.
    """
    if INTERPRETED:
        return tl.float32
    return {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}[dtype]


if triton is not None:

    @triton.jit
    def forward_kernel(
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
    def backward_dkdv_kernel(
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
    def backward_dq_kernel(
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
