"""Datasets and loaders: shapes, labels, DDP sharding, reproducible draws, bad samples, layouts."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

from datasets.loader import EvalSampler, TrainSampler, build_datasets, build_loaders
from datasets.packed import PackedWriter
from datasets.readers import DataError, FrameFolderClip
from utils.errors import UserError


def test_train_and_val_batches(frames_root, make):
    cfg = make.tiny_config(frames_root, "TEST.NUM_CLIP", "2", "TEST.NUM_CROP", "3")
    loaders = build_loaders(cfg)
    assert (loaders.num_train, loaders.num_val) == (9, 9)  # xset: setup 2 trains, setup 1 validates
    assert loaders.class_names == ["drink water", "eat meal", "brush teeth"]
    assert loaders.train_labels == {"identity": {0, 1, 2}}
    batches = list(loaders.train)
    assert len(batches) == 2  # 9 // 4, drop_last
    batch = batches[0]
    # uint8 IFNS windows [B, T, k + 2, 1, S, S] (k = 2)
    assert batch["frames"].shape == (4, 4, 4, 1, 16, 16) and batch["frames"].dtype == torch.uint8
    for key in ("label", "identity", "camera", "index"):
        assert batch[key].dtype == torch.long and batch[key].shape == (4,)
    names = loaders.train.dataset.names
    for i, label, identity in zip(batch["index"], batch["label"], batch["identity"]):
        assert int(label) == int(names[i][-3:]) - 1 and int(identity) == int(names[i][9:12]) - 1
    assert all(int(c) == int(names[i][5:8]) for i, c in zip(batch["index"], batch["camera"]))
    val = list(loaders.val)
    assert [b["frames"].shape for b in val] == [(4, 6, 4, 4, 1, 16, 16)] * 2 + [(1, 6, 4, 4, 1, 16, 16)]
    assert torch.equal(torch.cat([b["index"] for b in val]), torch.arange(9))
    assert int(batch["num_bad"]) == 0


def test_train_sampler_shards_equal_and_reshuffles_per_epoch():
    samplers = [TrainSampler(11, rank, 3, seed=5) for rank in range(3)]
    for epoch in (0, 1):
        for s in samplers:
            s.set_epoch(epoch)
        shards = [[i for i, e in s] for s in samplers]
        assert all(len(shard) == 3 for shard in shards)
        flat = sum(shards, [])
        assert len(set(flat)) == 9
        assert all(e == epoch for s in samplers for _, e in s)
    first = [i for i, _ in TrainSampler(11, 0, 1, seed=5)]
    again = [i for i, _ in TrainSampler(11, 0, 1, seed=5)]
    later = TrainSampler(11, 0, 1, seed=5)
    later.set_epoch(1)
    assert first == again and first != [i for i, _ in later]


def test_eval_sampler_every_sample_once():
    shards = [list(EvalSampler(10, rank, 4)) for rank in range(4)]
    assert sum(shards, []) == list(range(10))
    assert [len(s) for s in shards] == [2, 3, 2, 3]


def test_sample_draws_depend_only_on_seed_epoch_index(frames_root, make):
    cfg = make.tiny_config(frames_root)
    dataset = build_datasets(cfg).train
    a = dataset[(3, 1)]["frames"]
    assert torch.equal(a, dataset[(3, 1)]["frames"])
    assert not torch.equal(a, dataset[(3, 2)]["frames"])
    workers = build_loaders(make.tiny_config(frames_root, "DATA.NUM_WORKERS", "2"))
    single = build_loaders(cfg)
    for loaders in (workers, single):
        loaders.train_sampler.set_epoch(1)
    for b1, b2 in zip(workers.train, single.train):
        assert torch.equal(b1["index"], b2["index"]) and torch.equal(b1["frames"], b2["frames"])


def test_eval_is_deterministic_and_the_windows_are_the_requested_frames(frames_root, make):
    cfg = make.tiny_config(frames_root)
    dataset = build_datasets(cfg).val
    frames = dataset[0]["frames"]  # [V, T, k + 2, 1, S, S]
    assert torch.equal(frames, dataset[0]["frames"])
    # the centre crop of a 24 x 32 frame at 16 px is a resize of the 24 x 24 centre
    name = dataset.names[0]
    clip = FrameFolderClip(frames_root / name, name)
    indices = dataset.sampler(clip.num_frames, None)[0]  # [T] segment centres
    windows = np.clip(indices[:, None] + np.arange(-3, 1), 0, clip.num_frames - 1)  # t-k-1..t
    gray = clip.read(np.arange(clip.num_frames), gray=True)[:, :, 4:28]
    expected = np.stack([[cv2.resize(gray[f], (16, 16), interpolation=cv2.INTER_LINEAR) for f in row]
                         for row in windows])  # [T, k + 2, S, S]
    np.testing.assert_array_equal(frames[0, :, :, 0].numpy(), expected)


def test_video_layout_matches_frames_layout_shapes(videos_root, make):
    loaders = build_loaders(make.tiny_config(videos_root, "DATA.LAYOUT", "video"))
    batch = next(iter(loaders.train))
    assert batch["frames"].shape == (4, 4, 4, 1, 16, 16)


def test_video_backends_give_the_same_items(videos_root, make):
    items = [build_datasets(make.tiny_config(videos_root, "DATA.LAYOUT", "video", "DATA.VIDEO_BACKEND", backend)).val[0]
             for backend in ("decord", "opencv")]
    assert torch.equal(items[0]["frames"], items[1]["frames"])


def test_lps_on_the_fly(frames_root, make):
    plain = build_datasets(make.tiny_config(frames_root)).val[0]["frames"]
    degraded = build_datasets(make.tiny_config(frames_root, "LPS.LEVEL", "2")).val[0]["frames"]
    assert degraded.shape == plain.shape and not torch.equal(degraded, plain)


def test_lps_on_the_fly_with_the_crop_on_the_device(frames_root, make):
    from datasets.device import to_device
    from datasets.loader import collate_for

    cfg = make.tiny_config(frames_root, "LPS.LEVEL", "2")
    worker = build_datasets(cfg, crop_on_device=False).val
    device = build_datasets(cfg, crop_on_device=True).val  # the same film noise, cropped on the device
    batch = collate_for(device)([device[i] for i in range(3)])
    finished = to_device(batch, torch.device("cpu"))["frames"]
    expected = torch.stack([worker[i]["frames"] for i in range(3)])
    assert (finished.int() - expected.int()).abs().max() <= 1


def test_lps_needs_frames_not_precomputed_planes(tmp_path, make):
    for kind in ("fd", "avg"):
        (tmp_path / kind / "S001C001P001R001A001").mkdir(parents=True)
        (tmp_path / kind / "S002C001P001R001A001").mkdir(parents=True)
    cfg = make.tiny_config(tmp_path, "DATA.LAYOUT", "precomputed", "DATA.FD_ROOT", str(tmp_path / "fd"),
                           "DATA.AVG_ROOT", str(tmp_path / "avg"), "LPS.LEVEL", "2")
    with pytest.raises(UserError, match="precomputed layout holds IFNS planes"):
        build_datasets(cfg)


def test_bad_sample_raises_naming_it_or_is_skipped_and_counted(frames_root, make):
    val_name = "S001C001P002R001A003"
    (frames_root / val_name / "00005.jpg").write_bytes(b"broken")
    train_name = "S002C001P001R001A001"
    shutil.rmtree(frames_root / train_name)
    (frames_root / train_name).mkdir()  # listed, but holds no frame
    strict = build_datasets(make.tiny_config(frames_root))
    with pytest.raises(DataError, match=f"{val_name}.*00005.jpg"):
        [strict.val[i] for i in range(len(strict.val))]
    with pytest.raises(DataError, match=train_name):
        strict.train[strict.train.names.index(train_name)]
    loaders = build_loaders(make.tiny_config(frames_root, "DATA.SKIP_BAD", "True"))
    val = list(loaders.val)
    assert sum(int(b["num_bad"]) for b in val) == 1
    assert sum(len(b["index"]) for b in val) == 8
    loaders.train_sampler.set_epoch(0)
    train_bad = sum(int(b["num_bad"]) for b in loaders.train)
    batches = list(loaders.train)
    assert all(b["frames"].shape[0] == 4 for b in batches)
    bad_index = loaders.train.dataset.names.index(train_name)
    replaced = loaders.train.dataset[(bad_index, 0)]
    assert replaced["num_bad"] == 1 and replaced["index"] == (bad_index + 1) % 9
    assert train_bad == int(bad_index in [i for i, _ in loaders.train_sampler][:8])


def test_user_errors(tmp_path, frames_root, make):
    with pytest.raises(UserError, match="DATA.ROOT"):
        build_loaders(make.tiny_config(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="DATA.PACKED_ROOT"):
        build_loaders(make.tiny_config(frames_root, "DATA.LAYOUT", "packed"))
    with pytest.raises(UserError, match="DATA.NUM_CLASSES"):
        build_loaders(make.tiny_config(frames_root, "DATA.NUM_CLASSES", "2"))


def test_precomputed_layout(tmp_path, make):
    names = ["S001C001P001R001A001", "S002C001P001R001A002"]
    for kind in ("fd", "avg"):
        for name in names:
            folder = tmp_path / kind / name
            folder.mkdir(parents=True)
            for t in range(8):
                cv2.imwrite(str(folder / f"{t + 1}.jpg"), np.full((20, 30), 10 * t, np.uint8))
    cfg = make.tiny_config(tmp_path, "DATA.LAYOUT", "precomputed", "DATA.FD_ROOT",
                           str(tmp_path / "fd"), "DATA.AVG_ROOT", str(tmp_path / "avg"),
                           "TRAIN.BATCH_SIZE", "1")
    loaders = build_loaders(cfg)
    batch = next(iter(loaders.val))
    assert batch["frames"].shape == (1, 1, 4, 3, 1, 16, 16)  # the planes as the F = 3 frames
    # 8 frames, T = 4: centres t = 1, 3, 5, 7; files are 1-based, file i + 1 holds value 10 i.
    planes = batch["frames"][0, 0, :, :, 0, 8, 8]  # [T, 3]
    expected = [[10 * (t - 1), 10 * t, 10 * t] for t in (1, 3, 5, 7)]
    np.testing.assert_array_equal(planes.numpy(), expected)
    assert next(iter(loaders.train))["frames"].shape == (1, 4, 3, 1, 16, 16)


def test_packed_layout_equals_frames_layout(frames_root, tmp_path, make):
    store = tmp_path / "packed"
    plain = build_datasets(make.tiny_config(frames_root))
    with PackedWriter(store) as writer:
        for dataset in (plain.train, plain.val):
            for name in dataset.names:
                clip = FrameFolderClip(frames_root / name, name)
                writer.add(name, clip.read(np.arange(clip.num_frames), gray=True))
    packed = build_datasets(make.tiny_config(frames_root, "DATA.LAYOUT", "packed",
                                             "DATA.PACKED_ROOT", str(store)))
    assert packed.train.names == plain.train.names
    assert torch.equal(packed.train[(2, 3)]["frames"], plain.train[(2, 3)]["frames"])
    assert torch.equal(packed.val[1]["frames"], plain.val[1]["frames"])


def test_workers_do_not_hang_after_the_parent_used_opencv_threads():
    """OpenCV's thread pool does not survive a fork once it has run and gone idle: a worker that
    reconfigured the inherited pool hung forever (seen when a test using OpenCV in the main process
    ran before a loader test). worker_options makes the parent single-threaded before forking."""
    import subprocess
    import sys

    script = (
        "import time, cv2, numpy as np\n"
        "from torch.utils.data import DataLoader\n"
        "from datasets.loader import worker_options\n"
        "cv2.setNumThreads(2)\n"
        "image = np.random.rand(1500, 1500).astype(np.float32)\n"
        "for _ in range(10):\n"
        "    cv2.GaussianBlur(image, (15, 15), 3)\n"
        "time.sleep(2)  # the pool threads go to sleep on their condition variables\n"
        "print(sum(len(b) for b in DataLoader(list(range(8)), batch_size=2, **worker_options(2, persistent=False))))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "8", result.stderr[-2000:]
