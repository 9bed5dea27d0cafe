"""The attention module: nn.MultiheadAttention compatibility and backend equivalence.

On CPU the triton backend falls back to sdpa unless ``TRITON_INTERPRET=1`` is set before the kernel
is imported: ``TRITON_INTERPRET=1 pytest tests/test_attention.py tests/test_model.py -k triton``
compares the real kernel with ``math`` (forward and gradients).
"""
import pytest
import torch
from torch import nn

from models.attention import BACKENDS, Attention, math_attention

DIM, HEADS, TOKENS, BATCH = 32, 4, 5, 3


def _attention(backend: str, bias: bool = True) -> Attention:
    torch.manual_seed(0)
    attn = Attention(DIM, HEADS, bias=bias, backend=backend).double()
    if bias:
        nn.init.normal_(attn.in_proj_bias)
    return attn


def test_matches_torch_multihead_attention_with_its_state_dict():
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(DIM, HEADS, batch_first=True).double()
    nn.init.normal_(reference.in_proj_bias)
    attn = Attention(DIM, HEADS).double()
    attn.load_state_dict(reference.state_dict())
    x = torch.randn(BATCH, TOKENS, DIM, dtype=torch.double)
    msg = torch.randn(BATCH, 1, DIM, dtype=torch.double)
    torch.testing.assert_close(attn(x), reference(x, x, x, need_weights=False)[0])
    causal = torch.ones(TOKENS, TOKENS, dtype=torch.bool).triu(1)
    torch.testing.assert_close(attn(x, causal=True),
                               reference(x, x, x, attn_mask=causal, need_weights=False)[0])
    # the message token as one extra key/value: the first L outputs of attention over L + 1 tokens
    full = torch.cat([x, msg], dim=1)
    torch.testing.assert_close(attn(x, extra=msg), reference(full, full, full, need_weights=False)[0][:, :TOKENS])
    context = torch.randn(BATCH, TOKENS + 2, DIM, dtype=torch.double)
    torch.testing.assert_close(attn(x, context), reference(x, context, context, need_weights=False)[0])


def test_math_attention_causal_mask():
    q = k = v = torch.randn(1, 1, 3, 2)
    out = math_attention(q, k, v, causal=True)
    torch.testing.assert_close(out[:, :, 0], v[:, :, 0])  # the first query sees only itself


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["self", "causal", "cross", "message"])
def test_backend_equals_math_forward_and_gradients(backend, mode):
    # the Triton kernel takes fp32/fp16/bf16 (on CPU it runs only under TRITON_INTERPRET=1, else sdpa)
    dtype = torch.float32 if backend == "triton" else torch.double
    tol = 1e-5 if backend == "triton" else 1e-7
    torch.manual_seed(1)
    x = torch.randn(BATCH, TOKENS, DIM, dtype=dtype, requires_grad=True)
    other = torch.randn(BATCH, 1 if mode == "message" else TOKENS + 1, DIM, dtype=dtype,
                        requires_grad=True)
    results = []
    for name in ("math", backend):
        attn = _attention(name, bias=mode != "cross").to(dtype)
        kwargs = {"self": {}, "causal": {"causal": True}, "cross": {"context": other},
                  "message": {"extra": other}}[mode]
        out = attn(x, **kwargs)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, DIM, dtype=dtype)).sum(),
                                    [x, other, *attn.parameters()], allow_unused=True)
        results.append((out, grads))
    (ref_out, ref_grads), (out, grads) = results
    torch.testing.assert_close(out, ref_out, rtol=tol, atol=tol)
    for grad, ref in zip(grads, ref_grads):
        if ref is None:
            assert grad is None
        else:
            torch.testing.assert_close(grad, ref, rtol=tol, atol=tol)


def test_unknown_backend_and_bad_width_are_rejected():
    with pytest.raises(ValueError):
        Attention(DIM, HEADS, backend="flash")
    with pytest.raises(ValueError):
        Attention(DIM, 5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sdpa_on_cpu_in_low_precision_is_the_formula_and_close_to_fp64(dtype):
    # PyTorch's fused CPU kernel is slower than the formula in bf16/fp16 (docs/performance.md):
    # the sdpa backend then computes exactly what math does, within the dtype's rounding of fp64
    x = torch.randn(BATCH, TOKENS, DIM, dtype=torch.double)
    msg = torch.randn(BATCH, 1, DIM, dtype=torch.double)
    outs = [_attention(name).to(dtype)(x.to(dtype), extra=msg.to(dtype)) for name in ("math", "sdpa")]
    assert torch.equal(outs[0], outs[1])
    reference = _attention("math")(x, extra=msg)
    torch.testing.assert_close(outs[1].double(), reference, rtol=0.05, atol=0.05)


def test_extra_token_rejects_context_and_causal():
    attn = _attention("math")
    x, msg = torch.randn(BATCH, TOKENS, DIM, dtype=torch.double), torch.randn(BATCH, 1, DIM, dtype=torch.double)
    with pytest.raises(ValueError):
        attn(x, x, extra=msg)
    with pytest.raises(ValueError):
        attn(x, extra=msg, causal=True)


def _key_mask(shape: tuple[int, ...], hidden: float = 0.4, seed: int = 2) -> torch.Tensor:
    """An additive mask: finite random scores, about ``hidden`` of the keys at -inf, key 0 always
    visible (every query keeps a finite entry)."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.randn(shape, generator=gen, dtype=torch.double)
    mask[torch.rand(shape, generator=gen) < hidden] = float("-inf")
    mask[..., 0] = 0.0
    return mask


@pytest.mark.parametrize("backend", ["sdpa", "triton"])  # triton: sdpa for masked attention
@pytest.mark.parametrize("mode", ["per_query", "per_key", "cross"])
def test_key_mask_equals_math_forward_and_gradients(backend, mode):
    """The additive key mask on the SDPA path equals the formula, forward and gradients."""
    torch.manual_seed(3)
    x = torch.randn(BATCH, TOKENS, DIM, dtype=torch.double, requires_grad=True)
    context = torch.randn(BATCH, TOKENS + 2, DIM, dtype=torch.double, requires_grad=True) if mode == "cross" else None
    keys = TOKENS + 2 if mode == "cross" else TOKENS
    mask = _key_mask((BATCH, 1 if mode == "per_key" else TOKENS, keys))
    results = []
    for name in ("math", backend):
        attn = _attention(name)
        out = attn(x, context, key_mask=mask)
        inputs = [x] + ([context] if context is not None else []) + list(attn.parameters())
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, DIM, dtype=torch.double)).sum(), inputs)
        results.append((out, grads))
    (ref_out, ref_grads), (out, grads) = results
    torch.testing.assert_close(out, ref_out, rtol=1e-7, atol=1e-7)
    for grad, ref in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("backend", ["math", "sdpa"])
def test_key_mask_gives_hidden_keys_exactly_zero_weight(backend):
    """With the identity as values the kernel returns the attention weights: the columns of hidden
    keys are exactly 0, and the visible tokens' outputs equal attention over the visible ones alone."""
    attn = _attention(backend)
    q = k = torch.randn(BATCH, HEADS, TOKENS, DIM // HEADS, dtype=torch.double)
    visible = torch.tensor([True, False, True, True, False])
    mask = torch.zeros(BATCH, 1, TOKENS, dtype=torch.double).masked_fill(~visible, float("-inf"))
    eye = torch.eye(TOKENS, dtype=torch.double).expand(BATCH, HEADS, TOKENS, TOKENS)
    weights = attn._kernel(q, k, eye, False, mask)  # [N, H, Lq, Lk]
    assert torch.equal(weights[..., ~visible], torch.zeros_like(weights[..., ~visible]))
    torch.testing.assert_close(weights.sum(-1), torch.ones(BATCH, HEADS, TOKENS, dtype=torch.double))
    x = torch.randn(BATCH, TOKENS, DIM, dtype=torch.double)
    torch.testing.assert_close(attn(x, key_mask=mask)[:, visible], attn(x[:, visible]))


def test_key_mask_rejects_extra_token_and_causal():
    attn = _attention("math")
    x, msg = torch.randn(BATCH, TOKENS, DIM, dtype=torch.double), torch.randn(BATCH, 1, DIM, dtype=torch.double)
    mask = torch.zeros(BATCH, 1, TOKENS, dtype=torch.double)
    for kwargs in ({"extra": msg}, {"causal": True}):
        with pytest.raises(ValueError, match="key_mask"):
            attn(x, key_mask=mask, **kwargs)
