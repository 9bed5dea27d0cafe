"""Temporal sampling, crops, jitter."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from datasets.sampling import eval_indices
from datasets.sampling import train_indices
from datasets.transforms import (CropBox, Jitter, apply_jitter, crop_resize,
                                 eval_crop_boxes, train_crop_box)


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
