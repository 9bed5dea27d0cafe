"""Baseline input encoders: BDQ math (blur kernel, quantiser, gradients), downsampling, RGB items,
the config builder."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import models
from datasets.items import ItemBuilder
from models.bdq import BDQEncoder, gaussian_kernel, soft_quantize
from models.encoders import CLIP_MEAN, CLIP_STD, DownsampleEncoder, FrameRequest, RGBEncoder, clip_normalize
from models.ifns import IFNSEncoder
from utils.config import load_config
from utils.errors import UserError


def _frames(b: int = 2, t: int = 3, f: int = 2, size: int = 8, seed: int = 0) -> torch.Tensor:
    """uint8 RGB frames [B, T, F, 3, S, S]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, f, 3, size, size), dtype=torch.uint8, generator=gen)


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


def _clips(b: int = 2, t: int = 3, size: int = 8, seed: int = 0) -> torch.Tensor:
    """float CLIP-normalised-like RGB clips [B, T, 3, S, S]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 3, size, size, generator=gen)


def _official_bdq(x: torch.Tensor, sigma: float, bins: torch.Tensor, hardness: float = 5.0) -> torch.Tensor:
    """The official BDQ forward (suakaw/BDQ_PrivacyAR degradNet.py) written out for a batch laid
    out as there, [B, 3, T, H, W]: Gaussian Conv3d (1 x 5 x 5, zero padding), x - roll(x, 1) along
    T without the first frame, batch min/max rescale to 0..15 with eps 1e-4, clamped and sorted
    bins, sigmoid staircase, back to difference units."""
    grid = torch.arange(5, dtype=torch.float64) - 2
    g = torch.exp(-grid ** 2 / (2 * sigma ** 2)) / (sigma * (2 * torch.pi) ** 0.5)
    kernel = (g[:, None] * g[None, :])
    kernel = (kernel / kernel.sum()).to(x.dtype).view(1, 1, 1, 5, 5).repeat(3, 1, 1, 1, 1)
    x = torch.nn.functional.conv3d(x, kernel, padding=(0, 2, 2), groups=3)
    x = (x - torch.roll(x, 1, dims=2))[:, :, 1:]
    low, high = x.min(), x.max()
    scale = max(float((high - low) / 15), 1e-4)
    x = (x - low) / ((high - low) + 1e-4) * 15
    bins = bins.clamp(0, 15).sort().values
    y = sum(torch.sigmoid(hardness * (x - b)) for b in bins)
    return y * scale + low


def test_bdq_equals_the_official_forward_on_one_clip():
    """Same input and parameters as the official code (one clip: its batch min/max is the clip's)."""
    enc = BDQEncoder()
    with torch.no_grad():
        enc.bins.copy_(torch.tensor([14.0, 0.5, 3.2, 16.0, -1.0] + [float(i) + 0.5 for i in range(5, 15)]))
    clips = _clips(b=1, t=4).double()
    ours = enc.double().encode_clips(clips)  # [1, 3, 3, 8, 8]
    theirs = _official_bdq(clips.permute(0, 2, 1, 3, 4), 3.0, enc.bins.detach().clone())  # [1, 3, 3, 8, 8]
    torch.testing.assert_close(ours, theirs.permute(0, 2, 1, 3, 4), rtol=1e-10, atol=1e-10)


def test_bdq_zero_padding():  # item 1
    enc = BDQEncoder()
    out = enc.blur(torch.ones(1, 3, 8, 8))
    kernel = enc.blur_kernel().detach()
    torch.testing.assert_close(out[0, 0, 0, 0], kernel[2:, 2:].sum())  # a corner sees a quarter
    torch.testing.assert_close(out[0, 0, 4, 4], torch.tensor(1.0))


def test_bdq_rescale_epsilon_and_step_floor():  # item 2
    enc = BDQEncoder(hardness=1e4)
    diff = torch.tensor([[0.0, 1e-4]])  # span = eps: the top value rescales to exactly 7.5
    scaled_top = 1e-4 / (1e-4 + 1e-4) * 15
    assert scaled_top == 7.5
    # hard staircase: 7.5 is above the bins 0.5 .. 6.5 and on 7.5 (sigmoid 0.5): q = 7.5
    out = enc.quantize(diff)
    torch.testing.assert_close(out, torch.tensor([[0.0, 7.5 * 1e-4]]), rtol=1e-4, atol=1e-9)


def test_bdq_bins_are_clamped_and_sorted_every_forward():  # item 3
    enc = BDQEncoder()
    with torch.no_grad():
        enc.bins.copy_(torch.tensor([20.0, -3.0] + [float(i) + 0.5 for i in range(2, 15)]))
    enc.encode_clips(_clips())
    bins = enc.bins.detach()
    assert bins[0] == 0 and bins[-1] == 15 and torch.all(bins[1:] >= bins[:-1])


def test_bdq_output_is_in_difference_units():  # item 4
    enc = BDQEncoder(hardness=1e4)  # the hard staircase: q = bins below the rescaled value
    clips = _clips(b=1, t=2)
    out = enc.encode_clips(clips)
    blurred = enc.blur(clips[0]).detach()
    diff = blurred[1] - blurred[0]
    low, span = diff.min(), diff.max() - diff.min()
    q = torch.floor((diff - low) / (span + 1e-4) * 15 + 0.5).clamp(0, 15)  # bins at 0.5, 1.5, ...
    torch.testing.assert_close(out[0, 0], q * span / 15 + low, rtol=1e-4, atol=1e-4)
    assert out.min() >= low - 1e-6 and out.max() <= low + span + 1e-6


def test_bdq_differences_consecutive_sampled_frames():  # item 5
    enc = BDQEncoder()
    assert enc.request.offsets == (0,) and enc.request.output_frames(8) == 7
    clips = _clips(b=1, t=4)
    out = enc.encode_clips(clips)
    assert out.shape == (1, 3, 3, 8, 8)
    moved = clips.clone()
    moved[:, 3] += 1.0  # frame 3 changes: only the difference (3 - 2) sees it, up to the clip's range
    changed = (enc.encode_clips(moved) - out).abs().amax(dim=(0, 2, 3, 4))
    assert changed[2] > 10 * changed[:2].max()
    static = clips[:, :1].expand(1, 3, 3, 8, 8)
    assert torch.allclose(enc.encode_clips(static), torch.zeros(1, 2, 3, 8, 8), atol=1e-3)


def test_bdq_sigma_is_learned_from_three():  # item 6
    enc = BDQEncoder()
    assert enc.sigma.item() == 3.0 and enc.sigma.requires_grad
    assert torch.equal(enc.bins.detach(), torch.arange(15, dtype=torch.float32) + 0.5)
    assert enc.hardness == 5.0 and enc.window == 5
    clips = _clips().requires_grad_(True)
    enc.encode_clips(clips).square().sum().backward()
    for name, grad in (("sigma", enc.sigma.grad), ("bins", enc.bins.grad), ("input", clips.grad)):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_bdq_clip_does_not_depend_on_its_batch():  # the one deliberate deviation (item 7)
    enc = BDQEncoder()
    clips = _clips(b=3)
    alone = enc.encode_clips(clips[:1])
    torch.testing.assert_close(enc.encode_clips(clips)[:1], alone)
    frames = _frames(f=1)
    torch.testing.assert_close(enc(frames), enc.encode_clips(clip_normalize(frames[:, :, 0])))


def test_downsample_equals_upsampled_low_res():
    size = 4
    frames = _frames(f=1, size=16)
    out = DownsampleEncoder(size)(frames)
    low = clip_normalize(frames[:, :, 0]).reshape(-1, 3, 4, 4, 4, 4).mean(dim=(3, 5))  # 4x4 block means
    up = torch.nn.functional.interpolate(low, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(out.reshape(-1, 3, 16, 16), up, atol=1e-6)
    # a pattern at the full-res Nyquist frequency vanishes entirely
    stripes = torch.ones(16) * torch.tensor([0, 255], dtype=torch.uint8).repeat(8)[None, :]
    frames = stripes.to(torch.uint8).expand(1, 1, 1, 3, 16, 16).clone()
    mean = clip_normalize(torch.full((1, 3, 1, 1), 127.5))  # the stripes' mean, normalised
    torch.testing.assert_close(DownsampleEncoder(size)(frames)[0, 0], mean[0].expand(3, 16, 16))


def test_rgb_and_builder():
    frames = _frames(f=1)
    expected = (frames[:, :, 0].double() / 255 - torch.tensor(CLIP_MEAN, dtype=torch.double)[:, None, None]) \
        / torch.tensor(CLIP_STD, dtype=torch.double)[:, None, None]
    torch.testing.assert_close(RGBEncoder()(frames).double(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        RGBEncoder()(frames[:, :, 0])

    def build(*opts):
        return models.build_input_encoder(load_config(None, ["DATA.FD_STRIDE", "3", *opts]))

    assert isinstance(build(), IFNSEncoder) and build().request.offsets == (-4, -3, -2, -1, 0)
    assert isinstance(build("MODEL.ENCODER", "downsample"), DownsampleEncoder)
    assert build("MODEL.ENCODER", "bdq").request.offsets == (0,)
    assert build("DATA.LAYOUT", "precomputed").request.planes
    with pytest.raises(UserError, match="precomputed"):
        build("MODEL.ENCODER", "rgb", "DATA.LAYOUT", "precomputed")


def test_gradient_reversal_flips_encoder_gradient_only():
    """Adversarial training: the identity loss reaches the BDQ parameters reversed (and scaled),
    while the identity head itself still minimises it."""
    from models.heads import scale_grad

    frames = _clips(b=4, t=2)
    labels = torch.tensor([0, 1, 0, 1])
    grads = {}
    for scale in (1.0, -0.5):
        torch.manual_seed(0)
        enc, head = BDQEncoder(), torch.nn.Linear(3, 2)
        feature = enc.encode_clips(frames).mean(dim=(1, 3, 4))  # [B, 3]
        loss = torch.nn.functional.cross_entropy(head(scale_grad(feature, scale)), labels)
        loss.backward()
        grads[scale] = (enc.sigma.grad.clone(), enc.bins.grad.clone(), head.weight.grad.clone())
    (s_pos, b_pos, h_pos), (s_neg, b_neg, h_neg) = grads[1.0], grads[-0.5]
    assert torch.allclose(s_neg, -0.5 * s_pos) and torch.allclose(b_neg, -0.5 * b_pos)
    assert torch.allclose(h_neg, h_pos)


def test_rgb_pair_items_for_the_dataset():
    """Pairs (t - k, t) are clamped to the clip, one decode serves every view, channels first."""
    reads = []

    class Clip:
        num_frames = 7

        def read(self, ids, gray):
            assert not gray
            reads.append(list(ids))
            return np.stack([np.full((4, 6, 3), 10 * i, dtype=np.uint8) for i in ids])

    builder = ItemBuilder(FrameRequest(offsets=(-4, 0), gray=False), 4, train=False, num_crop=3)
    frames = builder(Clip(), np.array([[1, 5], [2, 6]]), np.random.default_rng(0))["frames"]
    assert reads == [[0, 1, 2, 5, 6]]
    assert frames.shape == (6, 2, 2, 3, 4, 4) and frames.dtype == np.uint8  # [V, T, F, C, S, S]
    assert frames[0, :, :, 0, 0, 0].tolist() == [[0, 10], [10, 50]]
    assert frames[3, :, :, 0, 0, 0].tolist() == [[0, 20], [20, 60]]


def test_gray_scale_augmentation_of_rgb_items():
    class Clip:
        num_frames = 3

        def read(self, ids, gray):
            colours = np.array([200, 100, 50], np.uint8)
            return np.broadcast_to(colours, (len(ids), 8, 8, 3)).copy()

    always = ItemBuilder(RGBEncoder.request, 8, train=True, gray_scale=1.0)
    never = ItemBuilder(RGBEncoder.request, 8, train=True, gray_scale=0.0)
    gray = always(Clip(), np.array([[1, 2]]), np.random.default_rng(0))["frames"]
    colour = never(Clip(), np.array([[1, 2]]), np.random.default_rng(0))["frames"]
    luma = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert (gray == luma).all() and colour[0, 0, :, 0, 0].tolist() == [200, 100, 50]
