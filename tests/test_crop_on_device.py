"""DATA.CROP_ON_DEVICE: the device's crop-resize equals OpenCV's bilinear resize, the windows the
device finishes from whole frames equal the workers' windows up to rounding (train with jitter and
flips, multi-view test, luma levels of a video), batches of different frame counts, the errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.dataset import ClipCollate, ClipDataset
from datasets.device import to_device
from datasets.items import ItemBuilder
from datasets.loader import collate_for
from datasets.sampling import FrameSampler
from datasets.transforms import (JITTER_STRENGTH, CropBox, Jitter, apply_jitter, apply_jitter_torch, crop_resize,
                                 crop_resize_torch)
from models.ifns import IFNSEncoder
from utils.config import ConfigError
from utils.errors import UserError

# The workers resize with OpenCV's 11-bit fixed-point bilinear weights and round to uint8; the
# device resizes in float and rounds once: a window pixel moves by at most one gray level.
MAX_LEVELS, MEAN_LEVELS = 1, 0.3
CPU = torch.device("cpu")


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


def test_identity_jitter_leaves_frames_unchanged_per_sample():
    gray = torch.randint(0, 256, (2, 3, 4, 5, 6)).float()
    jitter = torch.tensor([[1.0, 1.0], [1.5, 0.5]])
    out = apply_jitter_torch(gray, jitter)
    assert torch.equal(out[0], gray[0])
    expected = apply_jitter(gray[1].reshape(-1, 5, 6).numpy(), Jitter(1.5, 0.5)).reshape(3, 4, 5, 6)
    assert np.abs(out[1].numpy() - expected).max() < 1e-3


def _datasets(make, train: bool, jitter: float, frames: np.ndarray) -> tuple[ClipDataset, ClipDataset]:
    request = IFNSEncoder(2).request
    builders = [ItemBuilder(request, 12, train=train, scales=(1.0, 0.875, 0.75, 0.66), flip=True,
                            color_jitter=jitter, num_crop=3, crop_on_device=on) for on in (False, True)]
    return tuple(ClipDataset(names=["S001C001P001R001A001", "S001C001P002R001A002"],
                             opener=lambda name: make.ArrayClip(frames),
                             sampler=FrameSampler(4, train=train, num_clip=2), builder=builder, seed=0)
                 for builder in builders)


def _assert_near(actual: torch.Tensor, expected: torch.Tensor, gain: float = 1.0) -> None:
    """uint8 windows equal up to the rounding of the workers' resize, times ``gain`` (a jitter
    amplifies it)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype == torch.uint8
    levels = (actual.int() - expected.int()).abs().float()
    assert levels.max() <= MAX_LEVELS * gain + 1e-6 and levels.mean() < MEAN_LEVELS * gain


@pytest.mark.parametrize("train, jitter", [(True, 0.0), (True, 1.0), (False, 0.0)])
def test_device_crop_gives_the_worker_windows(train, jitter, make):
    frames = np.random.default_rng(1).integers(0, 256, size=(9, 14, 20), dtype=np.uint8)
    worker_ds, device_ds = _datasets(make, train, jitter, frames)
    keys = [(index, epoch) for epoch in range(4) for index in range(2)]
    batch = collate_for(device_ds)([device_ds[key] for key in keys])
    views = () if train else (6,)  # test: 2 clips x 3 crops
    assert batch["frames"].dtype == torch.uint8 and batch["frames"].shape[2:] == (14, 20)
    assert batch["windows"].shape == (8,) + views + (4, 4) and batch["boxes"].shape == (8,) + views + (5,)
    assert ("jitter" in batch) == train
    finished = to_device(batch, CPU)
    assert set(finished) == {"frames", "label", "camera", "identity", "index", "num_bad"}
    gain = 2 * (1 + JITTER_STRENGTH) ** 2 if jitter else 1.0  # brightness times contrast, two roundings
    _assert_near(finished["frames"], torch.stack([worker_ds[key]["frames"] for key in keys]), gain)


def test_luma_video_on_the_device_gives_the_worker_windows(make, videos_root):
    from datasets.loader import build_datasets, build_loaders

    cfg = make.tiny_config(videos_root, "DATA.LAYOUT", "video", "DATA.VIDEO_BACKEND", "luma",
                           "DATA.CROP_ON_DEVICE", "True", "TEST.NUM_CROP", "3")
    batch = next(iter(build_loaders(cfg).val))
    scale, offset = batch["levels"][0].tolist()
    assert scale == pytest.approx(255 / 219) and offset == pytest.approx(-16 * 255 / 219)  # mp4v
    frames = to_device(batch, CPU)["frames"]  # [B, 3, T, k + 2, 1, S, S]
    assert frames.shape[1] == 3
    worker = build_datasets(cfg, crop_on_device=False).val  # gray from the same luma by a table
    expected = torch.stack([worker[int(i)]["frames"] for i in batch["index"]])
    levels = (frames.int() - expected.int()).abs().float()
    # The table also rounds each frame's gray before the resize: one level more.
    assert levels.max() <= MAX_LEVELS + 1 and levels.mean() < 2 * MEAN_LEVELS


def test_collate_pads_frame_counts_and_rejects_mixed_sizes():
    collate = ClipCollate({"frames": ((0, 0, 0), torch.uint8), "levels": ((2,), torch.float32)}, crop_size=4)
    items = [{"frames": torch.full((n, 4, 6), n, dtype=torch.uint8), "levels": torch.ones(2),
              "label": 0, "camera": 1, "identity": 0, "index": i, "num_bad": 0} for i, n in enumerate((3, 5))]
    batch = collate(items)
    assert batch["frames"].shape == (2, 5, 4, 6) and batch["levels"].shape == (2, 2) and int(batch["size"]) == 4
    assert batch["frames"][0, :3].eq(3).all() and batch["frames"][0, 3:].eq(0).all()
    items[1]["frames"] = torch.zeros(5, 4, 8, dtype=torch.uint8)
    with pytest.raises(UserError, match="frames of one size"):
        collate(items)


def test_empty_batch_gives_empty_frames(make):
    frames = np.zeros((9, 14, 20), np.uint8)
    _, device_ds = _datasets(make, False, 0.0, frames)
    batch = collate_for(device_ds)([None])
    assert batch["windows"].shape == (0, 6, 0, 4) and batch["levels"].shape == (0, 2)
    assert to_device(batch, CPU)["frames"].shape == (0, 6, 0, 4, 1, 12, 12)


def test_frames_shrinking_two_fold_are_refused(make):
    frames = np.zeros((9, 30, 40), np.uint8)
    _, device_ds = _datasets(make, False, 0.0, frames)  # 30 px short side -> 12 px: 2.5x
    with pytest.raises(UserError, match="DATA.CROP_ON_DEVICE"):
        device_ds[0]


def test_config_needs_gray_frames(make, tmp_path):
    with pytest.raises(ConfigError, match="DATA.CROP_ON_DEVICE"):
        make.tiny_config(tmp_path, "DATA.CROP_ON_DEVICE", "True", "MODEL.ENCODER", "rgb")
    with pytest.raises(ConfigError, match="DATA.PLANES_ON_DEVICE was removed"):
        make.tiny_config(tmp_path, "DATA.PLANES_ON_DEVICE", "True")


def test_training_with_the_crop_on_the_device(tmp_path, frames_root):
    import json

    import main as launcher

    opts = ["DATA.ROOT", str(frames_root), "DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "16",
            "DATA.FD_STRIDE", "2", "DATA.NUM_WORKERS", "0", "DATA.NUM_CLASSES", "3",
            "MODEL.PRIVACY_CLASSES", "[3]", "DATA.SYNTHETIC.ENABLED", "False", "MODEL.CUSTOM.LAYERS", "1",
            "MODEL.CUSTOM.TEXT_LAYERS", "1", "MODEL.CUSTOM.PATCH_SIZE", "8", "TEST.NUM_CROP", "3",
            "TRAIN.EPOCHS", "1", "TRAIN.WARMUP_EPOCHS", "0", "AUG.COLOR_JITTER", "0.5"]
    for on in ("False", "True"):
        assert launcher.main(["--output", str(tmp_path / on), "--batch-size", "4", "--opts", *opts,
                              "DATA.CROP_ON_DEVICE", on]) == 0
    worker, device = (torch.load(tmp_path / on / "last.pth", weights_only=True) for on in ("False", "True"))
    assert worker["global_step"] == device["global_step"] == 2
    for key, value in worker["model"].items():  # inputs within a gray level: the same training
        torch.testing.assert_close(device["model"][key], value, rtol=0, atol=5e-3)  # AdamW: a few
    metrics = json.loads((tmp_path / "True" / "metrics.json").read_text())  # tiny-gradient entries
    assert metrics["num_views"] == 6 and metrics["num_videos"] == 9  # 2 clips x 3 crops


@pytest.mark.parametrize("frames_in_clip", [9, 60])  # 60: the clips' frames outnumber a view's windows
def test_both_resize_orders_give_the_worker_windows(make, frames_in_clip):
    frames = np.random.default_rng(2).integers(0, 256, size=(frames_in_clip, 14, 20), dtype=np.uint8)
    worker_ds, device_ds = _datasets(make, False, 0.0, frames)
    item = device_ds[0]
    assert (item["frames"].shape[0] > 4 * 4) == (frames_in_clip == 60)  # U against T (k + 2)
    batch = collate_for(device_ds)([item])
    _assert_near(to_device(batch, CPU)["frames"], worker_ds[0]["frames"][None])
