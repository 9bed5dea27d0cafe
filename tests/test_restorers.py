"""Restoration networks: any frame size in and out, identity at initialisation (residual output,
zeroed output convolution), every parameter trained, fused MDTA equal to the written-out one,
attention across channels, checkpoint round trip."""
from __future__ import annotations

import pytest
import torch

from models.convert import CheckpointError
from models.restorers import (MDTA, RESTORER_FORMAT, GDFN, Restormer, UNet, build_restorer,
                              restorer_from_checkpoint)

SMALL = {"unet": {"width": 8, "blocks": [1, 2]},
         "restormer": {"width": 8, "blocks": [1, 1, 1], "heads": [1, 2, 2], "refinement": 1}}


@pytest.mark.parametrize("arch", sorted(SMALL))
@pytest.mark.parametrize("size", [(16, 16), (13, 21)])
def test_any_size_and_identity_at_init(arch, size):
    model = build_restorer(arch, **SMALL[arch])
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == x.shape
    assert torch.equal(out, x)  # residual output from a zeroed convolution: the input back


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_every_parameter_gets_a_gradient(arch):
    torch.manual_seed(0)
    model = build_restorer(arch, **SMALL[arch])
    x = torch.rand(2, 3, 16, 16)
    target = torch.rand(2, 3, 16, 16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):  # the first step moves the zeroed output convolution; the second reaches everything
        optimizer.zero_grad()
        (model(x) - target).abs().mean().backward()
        optimizer.step()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks on one thread: a shared, oversubscribed CPU runs them many times faster so."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_fused_mdta_equals_the_reference():
    torch.manual_seed(0)
    fused = MDTA(16, 4, fused=True)
    reference = MDTA(16, 4, fused=False)
    reference.load_state_dict(fused.state_dict())
    with torch.no_grad():
        fused.temperature.copy_(torch.tensor([0.5, 1.0, 2.0, 4.0]).view(4, 1, 1))
        reference.temperature.copy_(fused.temperature)
    x = torch.randn(2, 16, 9, 7)
    torch.testing.assert_close(fused(x), reference(x), atol=1e-6, rtol=1e-5)


def test_mdta_attends_across_channels_of_the_whole_frame():
    """Changing one far-away pixel changes the output everywhere: the channel attention pools the
    whole frame (a 3x3 network of this depth would not see it)."""
    torch.manual_seed(0)
    attention = MDTA(8, 2)
    x = torch.randn(1, 8, 24, 24)
    y = x.clone()
    y[..., 23, 23] += 5.0
    changed = (attention(x) - attention(y)).abs().sum(1)[0]
    assert changed[0, 0] > 0  # 23 px away from the change


def test_gdfn_hidden_width_and_gate():
    ffn = GDFN(10, expansion=2.66)
    assert ffn.project_in.out_channels == 2 * 26 and ffn.project_out.in_channels == 26
    assert ffn(torch.zeros(1, 10, 5, 5)).abs().max() == 0  # no biases: zero in, zero out


def test_bad_sizes_are_value_errors():
    with pytest.raises(ValueError):
        build_restorer("resnet")
    with pytest.raises(ValueError):
        Restormer(width=8, blocks=[1, 1], heads=[1])
    with pytest.raises(ValueError):
        Restormer(width=9, blocks=[1, 1], heads=[1, 1])
    with pytest.raises(ValueError):
        UNet(blocks=[])


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_checkpoint_round_trip(arch):
    torch.manual_seed(0)
    model = build_restorer(arch, **SMALL[arch])
    for p in model.parameters():
        p.data.normal_()
    state = {"format": RESTORER_FORMAT, "arch": arch, "arch_kwargs": SMALL[arch], "model": model.state_dict()}
    loaded = restorer_from_checkpoint(state)
    x = torch.rand(1, 3, 12, 12)
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(CheckpointError):
        restorer_from_checkpoint({**state, "format": "something else"})
    with pytest.raises(CheckpointError):
        restorer_from_checkpoint({**state, "arch_kwargs": {**SMALL[arch], "width": 16}})
