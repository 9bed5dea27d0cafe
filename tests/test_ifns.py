"""The IFNS encoder against a per-frame reference, CLIP normalisation, and dataset items equal to
the reference pipeline (read, crop, jitter, gather)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.dataset import ClipDataset, sample_rng
from datasets.items import ItemBuilder, request_frames
from datasets.sampling import FrameSampler
from datasets.transforms import crop_resize, jitter_uint8
from models.encoders import CLIP_MEAN, CLIP_STD
from models.ifns import IFNSEncoder, PlaneNorm


def _reference_planes(gray: np.ndarray, t: int, k: int) -> np.ndarray:
    """DESIGN section 1, frame by frame, indices clamped to the clip: [3, H, W]."""
    n = len(gray)

    def g(i):
        return gray[min(max(i, 0), n - 1)].astype(np.float64)

    fd_prev = np.abs(g(t - 1) - g(t - 1 - k))
    fd_now = np.abs(g(t) - g(t - k))
    avg = np.mean([g(j) for j in range(t - k + 1, t + 1)], axis=0)
    return np.stack([fd_prev, fd_now, avg])


def _windows(gray: np.ndarray, indices: np.ndarray, stride: int) -> torch.Tensor:
    """uint8 [1, T, k + 2, 1, H, W] windows of the encoder's request, read from the needed frames only."""
    encoder = IFNSEncoder(stride)
    frame_ids, positions = request_frames(indices, encoder.request.offsets, len(gray))
    decoded = gray[frame_ids]  # only these frames are read
    assert set(frame_ids) == {j for t in indices for j in range(max(t - stride - 1, 0), t + 1)}
    return torch.from_numpy(decoded[positions])[None, :, :, None]


NORMS = [PlaneNorm(), PlaneNorm((0.0114, 0.0119, 0.3014), (0.0203, 0.0205, 0.0931))]


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
@pytest.mark.parametrize("norm", NORMS)
def test_encoder_equals_the_normalised_reference(stride, norm):
    rng = np.random.default_rng(stride)
    n = 20
    gray = rng.integers(0, 256, size=(n, 7, 9), dtype=np.uint8)
    indices = np.array([0, 1, 2, 9, 19])  # clamped at the clip start
    encoder = IFNSEncoder(stride, norm)
    planes = encoder.planes(_windows(gray, indices, stride))[0]  # [T, 3, H, W]
    out = encoder(_windows(gray, indices, stride))[0]
    assert planes.shape == out.shape == (5, 3, 7, 9) and out.dtype == torch.float32
    mean, std = np.array(norm.mean)[:, None, None], np.array(norm.std)[:, None, None]
    for i, t in enumerate(indices):
        reference = _reference_planes(gray, int(t), stride)
        np.testing.assert_allclose(planes[i].numpy(), reference, rtol=1e-6)
        np.testing.assert_allclose(out[i].numpy(), (reference / 255 - mean) / std, rtol=1e-5, atol=1e-5)


def test_gray_normalisation_equals_clip_per_channel_then_mean():
    x = np.broadcast_to(np.linspace(0, 255, 11, dtype=np.float32), (3, 1, 11))  # [3 planes, H, W]
    per_channel = np.mean([(x / 255 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD)], axis=0)
    scale, shift = np.array(PlaneNorm().affine()).T
    np.testing.assert_allclose(x * scale[:, None, None] + shift[:, None, None], per_channel, rtol=1e-5, atol=1e-6)
    assert PlaneNorm.from_lists([], []) == PlaneNorm()


def test_dataset_plane_statistics_standardise_each_plane():
    means, stds = np.array([0.02, 0.05, 0.4]), np.array([0.01, 0.03, 0.1])
    encoder = IFNSEncoder(1, PlaneNorm.from_lists(list(means), list(stds)), precomputed=True)
    rng = np.random.default_rng(0)
    planes = 255 * (means[None, :, None, None] + stds[None, :, None, None] * rng.standard_normal((64, 3, 16, 16)))
    frames = torch.from_numpy(np.clip(np.rint(planes), 0, 255).astype(np.uint8))[None, :, :, None]
    out = encoder(frames)[0]  # [T, 3, H, W]
    np.testing.assert_allclose(out.mean(dim=(0, 2, 3)).numpy(), 0.0, atol=0.1)
    np.testing.assert_allclose(out.std(dim=(0, 2, 3)).numpy(), 1.0, atol=0.1)
    with pytest.raises(ValueError):
        PlaneNorm.from_lists([0.1, 0.2], [1.0, 1.0])
    with pytest.raises(ValueError):
        PlaneNorm.from_lists([0.1, 0.2, 0.3], [1.0, 0.0, 1.0])


def test_encoder_rejects_frames_of_another_request():
    with pytest.raises(ValueError, match=r"\[B, T, 4, 1, H, W\]"):
        IFNSEncoder(2)(torch.zeros(1, 3, 6, 1, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize("train, jitter", [(False, 0.0), (True, 0.0), (True, 1.0)])
def test_dataset_items_equal_the_reference_pipeline(train, jitter, make):
    """Items: the needed frames cropped and resized (OpenCV), jittered in uint8, windows gathered."""
    frames = np.random.default_rng(0).integers(0, 256, size=(15, 20, 26), dtype=np.uint8)
    request = IFNSEncoder(2).request
    builder = ItemBuilder(request, 12, train=train, scales=(1.0, 0.875), flip=True, color_jitter=jitter, num_crop=3)
    sampler = FrameSampler(4, train=train, num_clip=2)
    dataset = ClipDataset(names=["S001C001P001R001A001"], opener=lambda name: make.ArrayClip(frames),
                          sampler=sampler, builder=builder, seed=0)
    out = dataset.load_item(0, epoch=1)["frames"]
    rng = sample_rng(0, 1, 0)  # the draws of sample 0 in epoch 1, in the dataset's order
    indices = sampler(len(frames), rng)
    frame_ids, positions = request_frames(indices, request.offsets, len(frames))
    boxes, drawn, _ = builder._draws(20, 26, rng)
    assert (drawn is not None) == (train and jitter > 0)
    views = []
    for clip_positions in positions:
        for box in boxes:
            crops = crop_resize(frames[frame_ids], box, 12)
            crops = crops if drawn is None else jitter_uint8(crops, drawn)
            views.append(crops[clip_positions][:, :, None])  # [T, k + 2, 1, S, S]
    expected = views[0] if train else np.stack(views)
    assert out.shape == expected.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
