"""IFNS planes against a per-frame reference, CLIP normalisation, temporal sampling, crops."""
from __future__ import annotations

import numpy as np
import pytest

from datasets.ifns import (CLIP_MEAN, CLIP_STD, PlaneNorm, denormalize_planes, ifns_planes,
                           needed_frames, normalize_planes)
from datasets.sampling import eval_indices
from datasets.sampling import train_indices
from datasets.transforms import (CropBox, Jitter, apply_jitter, crop_resize, eval_crop_boxes,
                                 train_crop_box)


def _reference_planes(gray: np.ndarray, t: int, k: int) -> np.ndarray:
    n = len(gray)

    def g(i):
        return gray[min(max(i, 0), n - 1)]

    fd_prev = np.abs(g(t - 1) - g(t - 1 - k))
    fd_now = np.abs(g(t) - g(t - k))
    avg = np.mean([g(j) for j in range(t - k + 1, t + 1)], axis=0)
    return np.stack([fd_prev, fd_now, avg])


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_planes_equal_reference_from_the_needed_frames_only(stride):
    rng = np.random.default_rng(0)
    n = 12
    gray = rng.uniform(0, 255, size=(n, 5, 6)).astype(np.float32)
    indices = np.array([0, 1, 5, 11])
    frame_ids = needed_frames(indices, stride, n)
    planes = ifns_planes(gray[frame_ids], frame_ids, indices, stride, n)  # only decoded frames
    assert planes.shape == (4, 3, 5, 6) and planes.dtype == np.float32
    for i, t in enumerate(indices):
        np.testing.assert_allclose(planes[i], _reference_planes(gray, int(t), stride), rtol=1e-6)
    assert set(frame_ids) == {j for t in indices for j in range(max(t - stride - 1, 0), t + 1)}


def test_gray_normalisation_equals_clip_per_channel_then_mean():
    x = np.broadcast_to(np.linspace(0, 255, 11, dtype=np.float32), (2, 3, 1, 11))  # [T, 3, H, W]
    per_channel = np.mean([(x / 255 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD)], axis=0)
    out = normalize_planes(x)
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, per_channel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(denormalize_planes(out), x, atol=1e-3)
    assert PlaneNorm.from_lists([], []) == PlaneNorm()


def test_dataset_plane_statistics_standardise_each_plane():
    rng = np.random.default_rng(0)
    means, stds = np.array([0.02, 0.05, 0.4]), np.array([0.01, 0.03, 0.1])
    planes = 255 * (means[None, :, None, None] + stds[None, :, None, None]
                    * rng.standard_normal((4, 3, 16, 16)))  # [T, 3, H, W] on the 0..255 scale
    norm = PlaneNorm.from_lists(list(means), list(stds))
    out = norm(planes)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=0.1)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1.0, atol=0.1)
    np.testing.assert_allclose(norm.inverse(out), planes, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError):
        PlaneNorm.from_lists([0.1, 0.2], [1.0, 1.0])
    with pytest.raises(ValueError):
        PlaneNorm.from_lists([0.1, 0.2, 0.3], [1.0, 0.0, 1.0])


def test_train_indices_one_per_segment_never_frame_zero():
    rng = np.random.default_rng(0)
    n, t = 33, 8
    seen = set()
    for _ in range(200):
        idx = train_indices(n, t, rng)
        assert idx.min() >= 1 and idx.max() <= n - 1
        segment = (idx - 1) // ((n - 1) / t)
        assert np.array_equal(segment, np.arange(t))
        seen.update(idx.tolist())
    assert len(seen) == n - 1  # every usable frame gets drawn
    assert np.all(train_indices(5, 8, rng) >= 1)  # fewer frames than segments
    assert np.array_equal(train_indices(1, 3, rng), [0, 0, 0])


def test_test_indices_centres_and_shifted_clips():
    assert np.array_equal(eval_indices(17, 4), [[3, 7, 11, 15]])  # 1 + (i + 0.5) * 4
    two = eval_indices(17, 4, num_clips=2)
    assert np.array_equal(two, [[2, 6, 10, 14], [4, 8, 12, 16]])


def test_train_crop_box_in_frame_and_from_scales():
    rng = np.random.default_rng(0)
    scales = [1.0, 0.875, 0.75, 0.66]
    for _ in range(100):
        box = train_crop_box(40, 60, scales, True, rng)
        assert box.top >= 0 and box.left >= 0
        assert box.top + box.height <= 40 and box.left + box.width <= 60
        assert box.height in {int(40 * s) for s in scales}
        assert box.width in {int(40 * s) for s in scales}


def test_test_crops_centre_and_three_along_long_side():
    assert eval_crop_boxes(40, 60, 1) == [CropBox(0, 10, 40, 40)]
    assert eval_crop_boxes(40, 60, 3) == [CropBox(0, 0, 40, 40), CropBox(0, 10, 40, 40),
                                         CropBox(0, 20, 40, 40)]
    assert eval_crop_boxes(60, 40, 3)[2] == CropBox(20, 0, 40, 40)


def test_crop_resize_same_for_all_frames_and_flip():
    frames = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    out = crop_resize(frames, CropBox(2, 1, 4, 4), 4)
    assert np.array_equal(out, frames[:, 2:6, 1:5])
    flipped = crop_resize(frames, CropBox(2, 1, 4, 4, flip=True), 4)
    assert np.array_equal(flipped, frames[:, 2:6, 1:5][:, :, ::-1])
    assert crop_resize(frames, CropBox(0, 0, 8, 8), 16).shape == (2, 16, 16)


def test_jitter_is_brightness_then_contrast_around_the_mean():
    gray = np.array([[[100.0, 120.0], [80.0, 100.0]]], np.float32)
    out = apply_jitter(gray, Jitter(brightness=1.1, contrast=2.0))
    np.testing.assert_allclose(out, [[[110.0, 154.0], [66.0, 110.0]]], rtol=1e-6)
