"""Triton frame + message attention equals the torch reference (forward and all five gradients).

``triton.jit`` decides at decoration time whether kernels are compiled or interpreted, so the
interpreter must be on before ``models.triton_attention`` is first imported. On a machine without
CUDA, ``test_kernels_in_interpreter`` therefore reruns this file in a fresh pytest process with
``TRITON_INTERPRET=1``, where the comparison tests run on CPU tensors. With CUDA they also run
directly on the GPU.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed")

from models.triton_attention import (  # noqa: E402  (after the importorskip above)
    INTERPRETED,
    frame_message_attention,
    is_available,
    reference_frame_message_attention,
)

INTERPRET_ENV = "TRITON_INTERPRET"
DEVICE = torch.device("cuda" if torch.cuda.is_available() and not INTERPRETED else "cpu")
RUNS_KERNELS = is_available(DEVICE)
SUBPROCESS_TIMEOUT_S = 300  # generous bound for the interpreted run on 2 shared cores
FP32_TOL = 1e-4  # fp32: same math, different summation order
HALF_TOL = 3e-2  # bf16/fp16 inputs against the fp32 reference on the same rounded inputs
TILE = 32  # tile size: L = 50 then spans two key/query blocks, the second one partial

needs_kernels = pytest.mark.skipif(
    not RUNS_KERNELS, reason="needs CUDA or TRITON_INTERPRET=1 (run by test_kernels_in_interpreter)"
)


def _inputs(batch: int, heads: int, seq_len: int, head_dim: int, dtype: torch.dtype,
            seed: int) -> list[torch.Tensor]:
    """q, k, v [N, H, L, D] and k_msg, v_msg [N, H, 1, D] with a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(batch, heads, seq_len, head_dim)] * 3 + [(batch, heads, 1, head_dim)] * 2
    return [torch.randn(shape, generator=gen).to(device=DEVICE, dtype=dtype) for shape in shapes]


def _compare(inputs: list[torch.Tensor], scale: float | None, tol: float, **blocks: int) -> None:
    """Checks output and the five gradients against the fp32 reference on the same inputs."""
    fused_in = [x.clone().requires_grad_(True) for x in inputs]
    ref_in = [x.detach().float().requires_grad_(True) for x in inputs]
    out = frame_message_attention(*fused_in, scale=scale, **blocks)
    ref = reference_frame_message_attention(*ref_in, scale=scale)
    assert out.dtype == inputs[0].dtype and out.shape == ref.shape
    torch.testing.assert_close(out.float(), ref, atol=tol, rtol=tol)
    grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    out.backward(grad.to(out.dtype))
    ref.backward(grad)
    for name, fused, exact in zip(("q", "k", "v", "k_msg", "v_msg"), fused_in, ref_in):
        assert fused.grad.dtype == fused.dtype, name
        torch.testing.assert_close(fused.grad.float(), exact.grad, atol=tol, rtol=tol, msg=name)


@needs_kernels
@pytest.mark.parametrize(
    "batch, heads, seq_len, head_dim, scale",
    [
        (1, 1, 7, 64, None),  # fewer tokens than one tile
        (1, 2, 50, 64, 0.3),  # ViT-B/32 token count, explicit scale
        (2, 1, 50, 80, None),  # head dim 80 padded to 128
        (3, 1, 17, 80, 0.125),  # one row past a tile boundary
    ],
)
def test_fp32_matches_reference(batch: int, heads: int, seq_len: int, head_dim: int,
                                scale: float | None) -> None:
    inputs = _inputs(batch, heads, seq_len, head_dim, torch.float32, seed=seq_len + head_dim)
    _compare(inputs, scale, FP32_TOL, block_m=TILE, block_n=TILE)


@needs_kernels
@pytest.mark.parametrize("dtype, seq_len", [(torch.bfloat16, 50), (torch.float16, 23)])
def test_half_precision_matches_reference(dtype: torch.dtype, seq_len: int) -> None:
    inputs = _inputs(1, 2, seq_len, 64, dtype, seed=3)
    _compare(inputs, None, HALF_TOL, block_m=TILE, block_n=TILE)


@needs_kernels
def test_default_tiles_and_noncontiguous_inputs() -> None:
    inputs = _inputs(1, 2, 33, 64, torch.float32, seed=5)
    # same values stored [N, L, H, D], as a projection followed by a head split leaves them
    strided = [x.transpose(1, 2).contiguous().transpose(1, 2) for x in inputs]
    assert not strided[0].is_contiguous()
    _compare(strided, None, FP32_TOL)


@needs_kernels
def test_message_dominates_when_its_score_is_large() -> None:
    """A message key far above every frame key routes each row to v_msg."""
    q, k, v, k_msg, v_msg = _inputs(1, 1, 20, 64, torch.float32, seed=7)
    q = torch.ones_like(q)
    k = torch.zeros_like(k)
    k_msg = torch.full_like(k_msg, 10.0)
    out = frame_message_attention(q, k, v, k_msg, v_msg, block_m=TILE, block_n=TILE)
    torch.testing.assert_close(out, v_msg.expand_as(out), atol=FP32_TOL, rtol=FP32_TOL)


def test_reference_is_softmax_over_frame_and_message_keys() -> None:
    q, k, v, k_msg, v_msg = (x.cpu() for x in _inputs(1, 1, 5, 8, torch.float32, seed=9))
    scores = torch.einsum("nhld,nhmd->nhlm", q, torch.cat([k, k_msg], dim=2)) * 0.5
    expected = scores.softmax(dim=-1) @ torch.cat([v, v_msg], dim=2)
    torch.testing.assert_close(reference_frame_message_attention(q, k, v, k_msg, v_msg, 0.5), expected)


def test_rejects_mismatched_shapes_and_dtypes() -> None:
    q, k, v, k_msg, v_msg = (x.cpu() for x in _inputs(1, 1, 5, 16, torch.float32, seed=11))
    with pytest.raises(ValueError, match="k_msg"):
        frame_message_attention(q, k, v, k_msg.expand(1, 1, 2, 16), v_msg)
    with pytest.raises(ValueError, match="must match q"):
        frame_message_attention(q, k[:, :, :4], v, k_msg, v_msg)
    with pytest.raises(ValueError, match="not supported"):
        frame_message_attention(q.double(), k, v, k_msg, v_msg)


def test_is_available_on_cpu_follows_the_interpreter_flag() -> None:
    assert is_available(torch.device("cpu")) == INTERPRETED


@pytest.mark.skipif(INTERPRETED or RUNS_KERNELS, reason="kernels already run in this process")
def test_kernels_in_interpreter() -> None:
    env = {**os.environ, INTERPRET_ENV: "1"}
    cmd = [sys.executable, "-m", "pytest", __file__, "-q", "-x", "-p", "no:cacheprovider"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # inside, every test runs except this launcher
    assert re.search(r"\d+ passed, 1 skipped", result.stdout), result.stdout[-2000:]
    # the Attention module and MSPNet with MODEL.ATTN_BACKEND triton against math, kernel running
    tests = os.path.dirname(__file__)
    cmd = [sys.executable, "-m", "pytest", os.path.join(tests, "test_attention.py"),
           os.path.join(tests, "test_model.py"), "-q", "-k", "triton", "-p", "no:cacheprovider"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b[1-9]\d* passed", result.stdout), result.stdout[-2000:]
