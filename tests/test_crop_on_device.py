"""DATA.CROP_ON_DEVICE: the device's crop-resize equals OpenCV's bilinear resize, the device planes
of whole frames equal the workers' planes up to their uint8 rounding (train with jitter and flips,
multi-view test, luma levels of a video), batches of different frame counts, and the errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.dataset import ClipCollate, ClipDataset
from datasets.ifns import DevicePlanes, PlaneNorm
from datasets.transforms import JITTER_STRENGTH, CropBox, crop_resize, crop_resize_torch
from utils.config import ConfigError
from utils.errors import UserError

NORM = PlaneNorm((0.0114, 0.0119, 0.3014), (0.0203, 0.0205, 0.0931))
# The workers round the resized frames to uint8 (and OpenCV's bilinear weights are 11-bit fixed
# point); the device keeps floats: a frame difference moves by up to about one gray level.
MAX_LEVELS, MEAN_LEVELS = 1.5, 0.3


def test_crop_resize_torch_is_opencvs_bilinear_resize():
    rng = np.random.default_rng(0)
    frames = rng.uniform(0, 255, (2, 5, 40, 56)).astype(np.float32)
    boxes = [[CropBox(0, 0, 40, 40), CropBox(3, 7, 30, 35, True), CropBox(2, 10, 36, 46)],
             [CropBox(5, 1, 20, 27), CropBox(0, 16, 40, 40, True), CropBox(4, 8, 32, 32)]]
    array = torch.from_numpy(np.stack([[box.as_array() for box in row] for row in boxes]))  # [2, 3, 5]
    out = crop_resize_torch(torch.from_numpy(frames), array, 32)
    assert out.shape == (2, 3, 5, 32, 32)
    for b, row in enumerate(boxes):  # shrinks, stretches (20 -> 32), flips, the identity size
        for v, box in enumerate(row):
            np.testing.assert_allclose(out[b, v].numpy(), crop_resize(frames[b], box, 32), atol=2e-3)


def _datasets(make, train: bool, jitter: float, frames: np.ndarray) -> tuple[ClipDataset, ClipDataset]:
    common = dict(names=["S001C001P001R001A001", "S001C001P002R001A002"],
                  opener=lambda name: make.ArrayClip(frames), train=train, num_frames=4, fd_stride=2,
                  input_size=12, scales=[1.0, 0.875, 0.75, 0.66], flip=True, color_jitter=jitter,
                  num_clip=2, num_crop=3, seed=0, lps_level=0, skip_bad=False, plane_norm=NORM)
    return ClipDataset(**common), ClipDataset(**common, planes_on_device=True, crop_on_device=True)


def _assert_near(actual: torch.Tensor, expected: torch.Tensor, gain: float = 1.0) -> None:
    """Equal to the rounding of the workers' frames, times ``gain`` (a jitter amplifies it)."""
    assert actual.shape == expected.shape
    levels = NORM.inverse(actual.numpy()) - NORM.inverse(expected.numpy())  # on the 0..255 scale
    assert np.abs(levels).max() < MAX_LEVELS * gain and np.abs(levels).mean() < MEAN_LEVELS * gain


@pytest.mark.parametrize("train, jitter", [(True, 0.0), (True, 1.0), (False, 0.0)])
def test_device_crop_gives_the_worker_planes(train, jitter, make):
    frames = np.random.default_rng(1).integers(0, 256, size=(9, 14, 20), dtype=np.uint8)
    planes_ds, frames_ds = _datasets(make, train, jitter, frames)
    collate = ClipCollate(frames_ds.item_shape, frames_ds.item_dtype, frames_ds.extra_fields)
    keys = [(index, epoch) for epoch in range(4) for index in range(2)]
    batch = collate([frames_ds[key] for key in keys])
    views = () if train else (6,)  # test: 2 clips x 3 crops
    assert batch["clips"].dtype == torch.uint8 and batch["clips"].shape[2:] == (14, 20)
    assert batch["windows"].shape == (8,) + views + (4, 4) and batch["boxes"].shape == (8,) + views + (5,)
    assert ("jitter" in batch) == train
    planes = DevicePlanes(NORM, crop_size=12)(batch, torch.device("cpu"))
    gain = (1 + JITTER_STRENGTH) ** 2 if jitter else 1.0  # brightness times contrast
    _assert_near(planes, torch.stack([planes_ds[key]["clips"] for key in keys]), gain)


def test_luma_video_on_the_device_gives_the_worker_planes(make, videos_root):
    from datasets.loader import build_datasets, build_device_planes, build_loaders

    cfg = make.tiny_config(videos_root, "DATA.LAYOUT", "video", "DATA.VIDEO_BACKEND", "luma",
                           "DATA.PLANES_ON_DEVICE", "True", "DATA.CROP_ON_DEVICE", "True",
                           "TEST.NUM_CROP", "3")
    batch = next(iter(build_loaders(cfg).val))
    scale, offset = batch["levels"][0].tolist()
    assert scale == pytest.approx(255 / 219) and offset == pytest.approx(-16 * 255 / 219)  # mp4v
    planes = build_device_planes(cfg)(batch, torch.device("cpu"))  # [B, 3, T, 3, S, S]
    assert planes.shape[1] == 3
    worker = build_datasets(cfg).val  # the workers' planes, gray from the same luma by a table
    expected = torch.stack([worker[int(i)]["clips"] for i in batch["index"]])
    levels = worker.plane_norm.inverse(planes.numpy()) - worker.plane_norm.inverse(expected.numpy())
    # The table also rounds each frame's gray before the resize: one level more on a difference.
    assert np.abs(levels).max() < MAX_LEVELS + 1 and np.abs(levels).mean() < 2 * MEAN_LEVELS


def test_collate_pads_frame_counts_and_rejects_mixed_sizes():
    collate = ClipCollate((0, 0, 0), torch.uint8, (("levels", (2,), torch.float32),))
    items = [{"clips": torch.full((n, 4, 6), n, dtype=torch.uint8), "levels": torch.ones(2),
              "label": 0, "identity": 0, "index": i, "num_bad": 0} for i, n in enumerate((3, 5))]
    batch = collate(items)
    assert batch["clips"].shape == (2, 5, 4, 6) and batch["levels"].shape == (2, 2)
    assert batch["clips"][0, :3].eq(3).all() and batch["clips"][0, 3:].eq(0).all()
    items[1]["clips"] = torch.zeros(5, 4, 8, dtype=torch.uint8)
    with pytest.raises(UserError, match="frames of one size"):
        collate(items)


def test_empty_batch_gives_empty_planes(make):
    frames = np.zeros((9, 14, 20), np.uint8)
    _, frames_ds = _datasets(make, False, 0.0, frames)
    batch = ClipCollate(frames_ds.item_shape, frames_ds.item_dtype, frames_ds.extra_fields)([None])
    assert batch["windows"].shape == (0, 6, 4, 4) and batch["levels"].shape == (0, 2)
    assert DevicePlanes(NORM, 12)(batch, torch.device("cpu")).shape == (0, 6, 4, 3, 12, 12)


def test_frames_shrinking_two_fold_are_refused(make):
    frames = np.zeros((9, 30, 40), np.uint8)
    _, frames_ds = _datasets(make, False, 0.0, frames)  # 30 px short side -> 12 px: 2.5x
    with pytest.raises(UserError, match="DATA.CROP_ON_DEVICE"):
        frames_ds[0]


def test_config_needs_planes_on_device(make, tmp_path):
    with pytest.raises(ConfigError, match="DATA.CROP_ON_DEVICE"):
        make.tiny_config(tmp_path, "DATA.CROP_ON_DEVICE", "True")


def test_training_with_the_crop_on_the_device(tmp_path, frames_root):
    import json

    import main as launcher

    opts = ["DATA.ROOT", str(frames_root), "DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "16",
            "DATA.FD_STRIDE", "2", "DATA.NUM_WORKERS", "0", "DATA.NUM_CLASSES", "3",
            "DATA.NUM_IDENTITIES", "3", "DATA.SYNTHETIC.ENABLED", "False", "MODEL.CUSTOM.LAYERS", "1",
            "MODEL.CUSTOM.TEXT_LAYERS", "1", "MODEL.CUSTOM.PATCH_SIZE", "8", "TEST.NUM_CROP", "3",
            "TRAIN.EPOCHS", "1", "TRAIN.WARMUP_EPOCHS", "0", "AUG.COLOR_JITTER", "0.5"]
    for on in ("False", "True"):
        assert launcher.main(["--output", str(tmp_path / on), "--batch-size", "4", "--opts", *opts,
                              "DATA.PLANES_ON_DEVICE", "True", "DATA.CROP_ON_DEVICE", on]) == 0
    worker, device = (torch.load(tmp_path / on / "last.pth", weights_only=True) for on in ("False", "True"))
    assert worker["global_step"] == device["global_step"] == 2
    for key, value in worker["model"].items():  # inputs within a gray level: the same training
        torch.testing.assert_close(device["model"][key], value, rtol=0, atol=5e-3)  # AdamW: a few
    metrics = json.loads((tmp_path / "True" / "metrics.json").read_text())  # tiny-gradient entries
    assert metrics["num_views"] == 6 and metrics["num_videos"] == 9  # 2 clips x 3 crops


@pytest.mark.parametrize("frames_in_clip", [9, 60])  # 60: the clips' frames outnumber a view's windows
def test_both_resize_orders_give_the_worker_planes(make, frames_in_clip):
    frames = np.random.default_rng(2).integers(0, 256, size=(frames_in_clip, 14, 20), dtype=np.uint8)
    planes_ds, frames_ds = _datasets(make, False, 0.0, frames)
    item = frames_ds[0]
    assert (item["clips"].shape[0] > 4 * 4) == (frames_in_clip == 60)  # U against T (k + 2)
    batch = ClipCollate(frames_ds.item_shape, frames_ds.item_dtype, frames_ds.extra_fields)([item])
    _assert_near(DevicePlanes(NORM, 12)(batch, torch.device("cpu")), planes_ds[0]["clips"][None])
