"""Baseline input encoders: BDQ math (blur kernel, quantiser, gradients), downsampling, shapes."""
from __future__ import annotations

import pytest
import torch

from models.encoders import (BDQEncoder, DownsampleEncoder, RGBEncoder, build_input_encoder,
                             gaussian_kernel, soft_quantize)


def _pairs(b: int = 2, t: int = 3, size: int = 8, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 2, 3, size, size, generator=gen)


@pytest.mark.parametrize("sigma", [0.1, 0.5, 1.0, 2.7, 50.0])
def test_blur_kernel_normalised_and_symmetric(sigma):
    kernel = gaussian_kernel(torch.tensor(sigma, dtype=torch.float64), 5)
    assert kernel.shape == (5, 5)
    assert torch.isclose(kernel.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(kernel, kernel.flip(0))
    assert torch.allclose(kernel, kernel.flip(1))
    assert torch.allclose(kernel, kernel.T)
    assert kernel[2, 2] == kernel.max()


def test_blur_kernel_matches_closed_form():
    sigma = 1.3
    coords = torch.arange(5, dtype=torch.float64) - 2
    r2 = coords[:, None] ** 2 + coords[None, :] ** 2
    expected = torch.exp(-r2 / (2 * sigma ** 2))
    expected /= expected.sum()
    assert torch.allclose(gaussian_kernel(torch.tensor(sigma, dtype=torch.float64), 5), expected)


def test_quantiser_limits_and_steps():
    bins = torch.arange(15, dtype=torch.float64) + 0.5
    x = torch.linspace(-3, 18, 500, dtype=torch.float64)
    q = soft_quantize(x, bins, hardness=5.0)
    assert q.min() > 0 and q.max() < 15
    assert torch.all(q[1:] >= q[:-1])  # monotone
    hard = soft_quantize(x, bins, hardness=200.0)
    from_edge = ((x - 0.5) - (x - 0.5).round()).abs()  # distance to the nearest bin centre
    expected = torch.floor(x + 0.5).clamp(0, 15)  # bins below x: the Heaviside staircase
    assert torch.allclose(hard[from_edge > 0.1], expected[from_edge > 0.1], atol=1e-6)
    step_points = torch.arange(0, 16, dtype=torch.float64)  # integers sit mid-step
    assert torch.allclose(soft_quantize(step_points, bins, 200.0), step_points, atol=1e-6)


def test_bdq_output_range_shape_and_gradients():
    enc = BDQEncoder()
    frames = _pairs().requires_grad_(True)
    out = enc(frames)
    assert out.shape == (2, 3, 3, 8, 8)
    assert out.min() > -1 and out.max() < 1
    out.square().sum().backward()
    for name, grad in (("sigma", enc.sigma.grad), ("bins", enc.bins.grad), ("input", frames.grad)):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_bdq_difference_cancels_static_scene():
    frames = _pairs(t=2)
    frames[:, :, 0] = frames[:, :, 1]  # nothing moved
    out = BDQEncoder()(frames)
    assert torch.allclose(out, torch.full_like(out, out.flatten()[0].item()))


def test_bdq_init_matches_paper():
    enc = BDQEncoder()
    assert torch.equal(enc.bins.detach(), torch.arange(15, dtype=torch.float32) + 0.5)
    assert enc.hardness == 5.0 and enc.window == 5


def test_downsample_equals_upsampled_low_res():
    size = 4
    frames = _pairs(size=16)
    out = DownsampleEncoder(size)(frames)
    low = frames[:, :, 1].reshape(-1, 3, 4, 4, 4, 4).mean(dim=(3, 5))  # 4x4 block means
    up = torch.nn.functional.interpolate(low, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(out.reshape(-1, 3, 16, 16), up, atol=1e-6)
    # a pattern at the full-res Nyquist frequency vanishes entirely
    stripes = torch.ones(16) * torch.tensor([1.0, -1.0]).repeat(8)[None, :]
    frames = stripes.expand(1, 1, 2, 3, 16, 16).clone()
    assert DownsampleEncoder(size)(frames).abs().max() < 1e-6


def test_rgb_and_builder():
    frames = _pairs()
    assert torch.equal(RGBEncoder()(frames), frames[:, :, 1])
    assert build_input_encoder("ifns") is None
    assert isinstance(build_input_encoder("downsample", downsample_size=4), DownsampleEncoder)
    assert isinstance(build_input_encoder("bdq"), BDQEncoder)
    with pytest.raises(ValueError):
        build_input_encoder("nope")
    with pytest.raises(ValueError):
        RGBEncoder()(frames[:, :, 0])


def test_gradient_reversal_flips_encoder_gradient_only():
    """Adversarial training: the identity loss reaches the BDQ parameters reversed (and scaled),
    while the identity head itself still minimises it."""
    from models.mspnet import scale_grad

    frames = _pairs(b=4, t=2)
    labels = torch.tensor([0, 1, 0, 1])
    grads = {}
    for scale in (1.0, -0.5):
        torch.manual_seed(0)
        enc, head = BDQEncoder(), torch.nn.Linear(3, 2)
        feature = enc(frames).mean(dim=(1, 3, 4))  # [B, 3]
        loss = torch.nn.functional.cross_entropy(head(scale_grad(feature, scale)), labels)
        loss.backward()
        grads[scale] = (enc.sigma.grad.clone(), enc.bins.grad.clone(), head.weight.grad.clone())
    (s_pos, b_pos, h_pos), (s_neg, b_neg, h_neg) = grads[1.0], grads[-0.5]
    assert torch.allclose(s_neg, -0.5 * s_pos) and torch.allclose(b_neg, -0.5 * b_pos)
    assert torch.allclose(h_neg, h_pos)


def test_rgb_pairs_for_the_dataset():
    """Pairs (t - k, t) are clamped to the clip, CLIP-normalised, one decode serves every view."""
    import numpy as np

    from datasets.ifns import CLIP_MEAN, CLIP_STD
    from datasets.rgb_input import pair_frames, rgb_pair_views
    from datasets.transforms import CropBox

    frame_ids, positions = pair_frames(np.array([[1, 5], [2, 6]]), stride=4, num_frames=7)
    assert frame_ids.tolist() == [0, 1, 2, 5, 6]
    assert frame_ids[positions].tolist() == [[[0, 1], [1, 5]], [[0, 2], [2, 6]]]

    class Clip:
        num_frames = 7

        def read(self, ids, gray):
            assert not gray
            return np.stack([np.full((4, 6, 3), 10 * i, dtype=np.uint8) for i in ids])

    views = rgb_pair_views(Clip(), np.array([[1, 5], [2, 6]]), stride=4, size=4, lps_level=0,
                           make_boxes=lambda h, w: [CropBox(0, 0, 4, 4), CropBox(0, 2, 4, 4)],
                           jitter=None, rng=np.random.default_rng(0))
    assert len(views) == 4 and views[0].shape == (2, 2, 3, 4, 4)
    expected = (10 * np.array([[0, 1], [1, 5]])[..., None] / 255.0 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    assert np.allclose(views[0][:, :, :, 0, 0], expected, atol=1e-5)
