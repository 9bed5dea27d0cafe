"""IFNS planes against a per-frame reference, CLIP normalisation, temporal sampling, crops."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from datasets.dataset import ClipDataset
from datasets.ifns import (CLIP_MEAN, CLIP_STD, PlaneNorm, denormalize_planes, ifns_planes,
                           ifns_planes_uint8, needed_frames, normalize_planes, normalize_uint8_planes)
from datasets.sampling import eval_indices
from datasets.sampling import train_indices
from datasets.transforms import (CropBox, Jitter, apply_jitter, crop_resize, draw_jitter,
                                 eval_crop_boxes, train_crop_box)


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


NORMS = [PlaneNorm(), PlaneNorm((0.0114, 0.0119, 0.3014), (0.0203, 0.0205, 0.0931))]


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
@pytest.mark.parametrize("norm", NORMS)
def test_uint8_kernel_equals_normalised_float_reference(stride, norm):
    rng = np.random.default_rng(stride)
    n = 20
    gray = rng.integers(0, 256, size=(n, 7, 9), dtype=np.uint8)
    indices = np.array([0, 1, 2, 9, 19])  # clamped at the clip start
    frame_ids = needed_frames(indices, stride, n)
    reference = norm(ifns_planes(gray[frame_ids].astype(np.float32), frame_ids, indices, stride, n))
    fast = ifns_planes_uint8(gray[frame_ids], frame_ids, indices, stride, n, norm)
    assert fast.shape == reference.shape == (5, 3, 7, 9) and fast.dtype == np.float32
    assert np.abs(fast - reference).max() < 1e-5 * max(1.0, np.abs(reference).max())
    planes = rng.integers(0, 256, size=(4, 3, 7, 9), dtype=np.uint8)
    assert np.abs(normalize_uint8_planes(planes, norm) - norm(planes.astype(np.float32))).max() < 1e-4


@pytest.mark.parametrize("train, jitter", [(False, 0.0), (True, 0.0), (True, 1.0)])
def test_dataset_planes_equal_the_float_reference_pipeline(train, jitter, make):
    """The fast uint8 path (test, and train without jitter) and the jittered float path give the
    reference: float crops, jitter, ifns_planes, then the dataset's normalisation."""
    frames = np.random.default_rng(0).integers(0, 256, size=(15, 20, 26), dtype=np.uint8)
    norm = NORMS[1]
    dataset = ClipDataset(names=["S001C001P001R001A001"], opener=lambda name: make.ArrayClip(frames),
                          train=train, num_frames=4, fd_stride=2, input_size=12, scales=[1.0, 0.875],
                          flip=True, color_jitter=jitter, num_clip=2, num_crop=3, seed=0, lps_level=0,
                          skip_bad=False, plane_norm=norm)
    out = dataset.load(0, epoch=1)
    rng = np.random.default_rng([0, 1, 0])  # the draws of sample 0 in epoch 1, in the dataset's order
    indices = dataset.frame_indices(len(frames), rng)
    frame_ids = needed_frames(indices, 2, len(frames))
    boxes = dataset._boxes(20, 26, rng)
    drawn = draw_jitter(jitter, rng) if train else None
    views = []
    for clip_indices in indices:
        for box in boxes:
            gray = crop_resize(frames[frame_ids], box, 12).astype(np.float32)
            gray = gray if drawn is None else apply_jitter(gray, drawn)
            views.append(norm(ifns_planes(gray, frame_ids, clip_indices, 2, len(frames))))
    expected = views[0] if train else np.stack(views)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() < 1e-4


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
    assert np.array_equal(out, frames[:, 2:6, 1:5]) and out.flags.c_contiguous
    flipped = crop_resize(frames, CropBox(2, 1, 4, 4, flip=True), 4)
    assert np.array_equal(flipped, frames[:, 2:6, 1:5][:, :, ::-1]) and flipped.flags.c_contiguous
    assert crop_resize(frames, CropBox(0, 0, 8, 8), 16).shape == (2, 16, 16)


@pytest.mark.parametrize("side, interpolation", [(28, cv2.INTER_LINEAR), (16, cv2.INTER_LINEAR),
                                                 (32, cv2.INTER_AREA), (40, cv2.INTER_AREA)])
def test_crop_resize_bilinear_below_a_2x_shrink_area_from_it(side, interpolation):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 50, 60), dtype=np.uint8)
    box = CropBox(5, 7, side, side + 2)
    crops = frames[:, 5:5 + side, 7:9 + side]
    expected = np.stack([cv2.resize(np.ascontiguousarray(c), (16, 16), interpolation=interpolation)
                         for c in crops])
    out = crop_resize(frames, box, 16)
    assert out.dtype == np.uint8 and np.array_equal(out, expected)
    flipped = crop_resize(frames, CropBox(5, 7, side, side + 2, flip=True), 16)
    assert np.array_equal(flipped, expected[:, :, ::-1])
    rgb = rng.integers(0, 256, (2, 50, 60, 3), dtype=np.uint8)
    expected_rgb = np.stack([cv2.resize(np.ascontiguousarray(c), (16, 16), interpolation=interpolation)
                             for c in rgb[:, 5:5 + side, 7:9 + side]])
    assert np.array_equal(crop_resize(rgb, box, 16), expected_rgb)


def test_jitter_is_brightness_then_contrast_around_the_mean():
    gray = np.array([[[100.0, 120.0], [80.0, 100.0]]], np.float32)
    out = apply_jitter(gray, Jitter(brightness=1.1, contrast=2.0))
    np.testing.assert_allclose(out, [[[110.0, 154.0], [66.0, 110.0]]], rtol=1e-6)
