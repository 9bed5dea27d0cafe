"""DATA.PLANES_ON_DEVICE: uint8 frame windows from the workers, planes computed in the train/test
step, equal to the planes the workers compute otherwise (train with and without jitter, test
views, strides 1-4, windows clamped at the clip start), through the launcher too."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from datasets.dataset import ClipCollate, ClipDataset
from datasets.ifns import PlaneNorm, ifns_planes, needed_frames, planes_from_windows, window_frames
from datasets.transforms import Jitter, apply_jitter, apply_jitter_torch
from utils.config import ConfigError

NORMS = [PlaneNorm(), PlaneNorm((0.0114, 0.0119, 0.3014), (0.0203, 0.0205, 0.0931))]
TOLERANCE = 1e-5


def _close(actual: torch.Tensor, expected: np.ndarray) -> None:
    assert tuple(actual.shape) == expected.shape and actual.dtype == torch.float32
    assert np.abs(actual.numpy() - expected).max() < TOLERANCE * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("jitter", [None, Jitter(1.3, 0.7)])
def test_windows_give_the_normalised_reference_planes(stride, norm, jitter):
    rng = np.random.default_rng(stride)
    n = 20
    gray = rng.integers(0, 256, size=(n, 7, 9), dtype=np.uint8)
    indices = np.array([0, 1, 2, 9, 19])  # clamped at the clip start
    frame_ids = needed_frames(indices, stride, n)
    frames = gray[frame_ids].astype(np.float32)
    if jitter is not None:
        frames = apply_jitter(frames, jitter)
    reference = norm(ifns_planes(frames, frame_ids, indices, stride, n))  # [T, 3, H, W]
    windows = torch.from_numpy(gray[window_frames(indices, stride, n)])  # [T, k + 2, H, W]
    assert windows.shape == (5, stride + 2, 7, 9)
    factors = None if jitter is None else torch.from_numpy(jitter.as_array())[None]  # [1, 2]
    _close(planes_from_windows(windows[None], norm, factors)[0], reference)


def test_identity_jitter_leaves_frames_unchanged_per_sample():
    gray = torch.randint(0, 256, (2, 3, 4, 5, 6)).float()
    jitter = torch.tensor([[1.0, 1.0], [1.5, 0.5]])
    out = apply_jitter_torch(gray, jitter)
    assert torch.equal(out[0], gray[0])
    expected = apply_jitter(gray[1].reshape(-1, 5, 6).numpy(), Jitter(1.5, 0.5)).reshape(3, 4, 5, 6)
    assert np.abs(out[1].numpy() - expected).max() < 1e-3


def _datasets(make, stride: int, train: bool, jitter: float, norm: PlaneNorm,
              shape: tuple[int, int] = (20, 26)) -> tuple[ClipDataset, ClipDataset]:
    frames = np.random.default_rng(stride).integers(0, 256, size=(9,) + shape, dtype=np.uint8)
    common = dict(names=["S001C001P001R001A001", "S001C001P002R001A002"],
                  opener=lambda name: make.ArrayClip(frames), train=train, num_frames=4, fd_stride=stride,
                  input_size=12, scales=[1.0, 0.875, 0.75], flip=True, color_jitter=jitter, num_clip=2,
                  num_crop=3, seed=0, lps_level=0, skip_bad=False, plane_norm=norm)
    return ClipDataset(**common), ClipDataset(**common, planes_on_device=True)


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
@pytest.mark.parametrize("train, jitter", [(True, 0.0), (True, 0.5), (True, 1.0), (False, 0.0)])
@pytest.mark.parametrize("shape", [(20, 26), (12, 16)])  # (12, 16): crops without a resize too
def test_dataset_windows_give_the_worker_planes(stride, train, jitter, shape, make):
    norm = NORMS[1]
    planes_ds, windows_ds = _datasets(make, stride, train, jitter, norm, shape)
    assert windows_ds.item_dtype == torch.uint8 and planes_ds.item_dtype == torch.float32
    for epoch in range(4):
        for index in range(2):
            key = (index, epoch)
            expected = planes_ds[key]["clips"].numpy()
            item = windows_ds[key]
            assert tuple(item["clips"].shape) == windows_ds.item_shape and item["clips"].dtype == torch.uint8
            if train:
                batch = ClipCollate(windows_ds.item_shape, windows_ds.item_dtype)([item])
                assert batch["jitter"].shape == (1, 2)
                _close(planes_from_windows(batch["clips"], norm, batch["jitter"])[0], expected)
            else:
                assert "jitter" not in item and item["clips"].shape[0] == 6  # V = 2 clips x 3 crops
                _close(planes_from_windows(item["clips"], norm), expected)


def test_empty_window_batch_keeps_the_dtype(make):
    _, windows_ds = _datasets(make, 2, False, 0.0, PlaneNorm())
    batch = ClipCollate(windows_ds.item_shape, windows_ds.item_dtype)([None])
    assert batch["clips"].dtype == torch.uint8 and batch["clips"].shape == (0, 6, 4, 4, 12, 12)
    assert planes_from_windows(batch["clips"]).shape == (0, 6, 4, 3, 12, 12)


def test_loaders_carry_windows_and_tools_keep_planes(make, frames_root):
    from datasets.loader import build_datasets, build_loaders

    cfg = make.tiny_config(frames_root, "DATA.PLANES_ON_DEVICE", "True", "AUG.COLOR_JITTER", "0.5")
    loaders = build_loaders(cfg)
    batch = next(iter(loaders.train))
    assert batch["clips"].dtype == torch.uint8 and batch["clips"].shape == (4, 4, 4, 16, 16)
    assert batch["jitter"].shape == (4, 2) and batch["jitter"].dtype == torch.float32
    assert next(iter(loaders.val))["clips"].shape == (4, 1, 4, 4, 16, 16)  # [B, V, T, k + 2, S, S]
    assert build_datasets(cfg).train.item_dtype == torch.float32


def test_config_rejects_device_planes_without_ifns(make, tmp_path):
    with pytest.raises(ConfigError, match="DATA.PLANES_ON_DEVICE"):
        make.tiny_config(tmp_path, "DATA.PLANES_ON_DEVICE", "True", "MODEL.ENCODER", "rgb")
    with pytest.raises(ConfigError, match="DATA.PLANES_ON_DEVICE"):
        make.tiny_config(tmp_path, "DATA.PLANES_ON_DEVICE", "True", "DATA.LAYOUT", "precomputed")


def test_training_with_device_planes_equals_worker_planes(tmp_path, frames_root, monkeypatch):
    import main as launcher
    from trainers.trainer import Trainer

    losses = []
    train_one_epoch = Trainer.train_one_epoch

    def recording(self, *args, **kwargs):
        stats = train_one_epoch(self, *args, **kwargs)
        losses.append(stats["loss"])
        return stats

    monkeypatch.setattr(Trainer, "train_one_epoch", recording)

    opts = ["DATA.ROOT", str(frames_root), "DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "16",
            "DATA.FD_STRIDE", "2", "DATA.NUM_WORKERS", "0", "DATA.NUM_CLASSES", "3",
            "DATA.NUM_IDENTITIES", "3", "DATA.SYNTHETIC.ENABLED", "False", "MODEL.CUSTOM.LAYERS", "1",
            "MODEL.CUSTOM.TEXT_LAYERS", "1", "MODEL.CUSTOM.PATCH_SIZE", "8", "TEST.NUM_CLIP", "2",
            "TEST.NUM_CROP", "3", "TRAIN.EPOCHS", "1", "TRAIN.WARMUP_EPOCHS", "0",
            "AUG.COLOR_JITTER", "0.5", "AUG.MIXUP", "0.8", "TRAIN.EPS", "1.0e-4"]  # eps: see test_distributed
    for on in ("False", "True"):
        out = tmp_path / on
        assert launcher.main(["--output", str(out), "--batch-size", "4", "--opts", *opts,
                              "DATA.PLANES_ON_DEVICE", on]) == 0
    worker = torch.load(tmp_path / "False" / "last.pth", weights_only=True)
    device = torch.load(tmp_path / "True" / "last.pth", weights_only=True)
    assert worker["global_step"] == device["global_step"] == 2
    assert len(losses) == 2 and abs(losses[0] - losses[1]) < TOLERANCE * abs(losses[0])
    for key, value in worker["model"].items():
        torch.testing.assert_close(device["model"][key], value, rtol=1e-5, atol=1e-6)
    metrics = [json.loads((tmp_path / on / "metrics.json").read_text()) for on in ("False", "True")]
    assert metrics[0]["acc1"] == metrics[1]["acc1"] and metrics[0]["num_views"] == metrics[1]["num_views"] == 6
