"""Packed store: pack tool round trip, loader equivalence with the frames layout, concurrency,
atomic writes and clear errors."""
import multiprocessing
import pickle
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datasets.dataset import ClipDataset
from datasets.items import ItemBuilder
from datasets.packed import INDEX_FILE, PackedClip, PackedOpener, PackedStore, PackedStoreError, PackedWriter
from datasets.readers import FrameFolderClip
from datasets.sampling import FrameSampler
from models.ifns import IFNSEncoder
from tools import pack_dataset
from utils.config import load_config

NAMES = ["S001C001P001R001A001", "S001C001P002R001A002", "S002C001P001R001A001", "S002C001P002R001A002"]
HEIGHT, WIDTH = 18, 24


def _write_frames(root: Path, num_frames: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for n, name in enumerate(NAMES):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(num_frames + n):  # clips of different lengths
            cv2.imwrite(str(folder / f"{i:05d}.jpg"), rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    return root


def _opts(root: Path) -> list[str]:
    return ["DATA.ROOT", str(root), "DATA.LAYOUT", "frames", "DATA.SYNTHETIC.ENABLED", "False",
            "DATA.INPUT_SIZE", "16", "DATA.NUM_FRAMES", "4", "DATA.FD_STRIDE", "2",
            "TEST.NUM_CLIP", "2", "TEST.NUM_CROP", "3"]


@pytest.fixture()
def packed(tmp_path):
    frames = _write_frames(tmp_path / "frames")
    out = tmp_path / "packed"
    assert pack_dataset.main(["--out", str(out), "--shard-bytes", "3000", "--no-progress",
                              "--opts", *_opts(frames)]) == 0
    return frames, out


def test_round_trip_equals_gray_decode(packed):
    frames, out = packed
    store = PackedStore(out)
    assert sorted(store.samples) == sorted(NAMES)
    assert len(list(out.glob("shard_*.u8"))) > 1  # small shards: the clips spread over several
    for name in NAMES:
        source = FrameFolderClip(frames / name, name)
        everything = np.arange(source.num_frames)
        assert store.entry(name).num_frames == source.num_frames
        np.testing.assert_array_equal(store.read_gray(name, everything), source.read(everything, gray=True))
        picked = np.array([3, 0, 3, source.num_frames - 1])
        got = PackedClip(store, name).read(picked, gray=True)
        assert got.dtype == np.uint8 and got.shape == (4, HEIGHT, WIDTH)
        np.testing.assert_array_equal(got, source.read(picked, gray=True))
        np.testing.assert_array_equal(store.read_gray(name, picked, crop=(2, 3, 5, 7)),
                                      source.read(picked, gray=True)[:, 2:7, 3:10])
        run = np.arange(2, 7)  # consecutive: a read-only view of the shard, no copy
        view = PackedClip(store, name).read(run, gray=True)
        assert type(view) is np.ndarray and not view.flags.writeable
        np.testing.assert_array_equal(view, source.read(run, gray=True))
        assert store.read_gray(name, run).flags.writeable  # the default is a copy


def test_dataset_over_packed_equals_frames(packed):
    frames, out = packed
    cfg = load_config(None, _opts(frames))

    def dataset(opener, train):
        builder = ItemBuilder(IFNSEncoder(2).request, 16, train=train, scales=(1.0, 0.875), flip=True,
                              color_jitter=0.8, num_crop=3)
        return ClipDataset(names=NAMES, opener=opener, sampler=FrameSampler(4, train=train, num_clip=2),
                           builder=builder, seed=cfg.SEED)

    def open_frames(name):
        return FrameFolderClip(frames / name, name)

    for train in (True, False):
        a, b = dataset(open_frames, train), dataset(PackedOpener(out), train)
        for index in range(len(NAMES)):
            # same uint8 gray frames in, same pipeline: identical clips
            np.testing.assert_array_equal(a.load_item(index, epoch=3)["frames"],
                                          b.load_item(index, epoch=3)["frames"])


def _checksums(store: PackedStore) -> list[int]:
    return [int(store.read_gray(name, np.arange(store.entry(name).num_frames)).sum(dtype=np.int64))
            for name in NAMES for _ in range(20)]


def test_processes_read_concurrently(packed):
    _, out = packed
    store = PackedStore(out)
    expected = _checksums(store)  # the parent maps the shards first; children must map their own
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        results = pool.map(_checksums, [pickle.loads(pickle.dumps(store)) for _ in range(4)])
    assert all(r == expected for r in results)


def test_writer_is_atomic_and_errors_are_clear(tmp_path):
    root = tmp_path / "store"
    with pytest.raises(RuntimeError):
        with PackedWriter(root) as writer:
            writer.add("a", np.zeros((2, 3, 4), np.uint8))
            raise RuntimeError("interrupted")
    assert not root.exists() and not list(tmp_path.iterdir())  # nothing half-written is left
    with PackedWriter(root) as writer:
        writer.add("a", np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    with pytest.raises(PackedStoreError, match="already exists"):
        PackedWriter(root)
    with PackedWriter(root, overwrite=True) as writer:
        writer.add("b", np.ones((1, 2, 2), np.uint8))
    store = PackedStore(root)
    assert list(store.samples) == ["b"]
    with pytest.raises(PackedStoreError, match="sample a"):
        store.read_gray("a", [0])
    with pytest.raises(PackedStoreError, match="out of range"):
        store.read_gray("b", [1])
    with pytest.raises(PackedStoreError, match="grayscale"):
        PackedClip(store, "b").read(np.array([0]), gray=False)
    (root / "shard_00000.u8").write_bytes(b"\0")  # truncated shard
    with pytest.raises(PackedStoreError, match="rebuild"):
        PackedStore(root).read_gray("b", [0])
    (root / INDEX_FILE).unlink()
    with pytest.raises(PackedStoreError, match="pack_dataset"):
        len(PackedStore(root))


def test_pack_tool_rejects_precomputed(tmp_path):
    assert pack_dataset.main(["--out", str(tmp_path / "x"), "--no-progress", "--opts", "DATA.LAYOUT",
                              "precomputed", "DATA.FD_ROOT", str(tmp_path), "DATA.AVG_ROOT",
                              str(tmp_path)]) == 2


def test_pack_tool_short_side_stores_frames_at_training_resolution(tmp_path):
    frames = _write_frames(tmp_path / "frames")
    out = tmp_path / "small"
    assert pack_dataset.main(["--out", str(out), "--short-side", "9", "--no-progress",
                              "--opts", *_opts(frames)]) == 0
    store = PackedStore(out)
    name = NAMES[1]
    source = FrameFolderClip(frames / name, name)
    everything = np.arange(source.num_frames)
    expected = np.stack([cv2.resize(f, (WIDTH // 2, HEIGHT // 2), interpolation=cv2.INTER_AREA)
                         for f in source.read(everything, gray=True)])  # short side 18 -> 9
    np.testing.assert_array_equal(store.read_gray(name, everything), expected)
    kept = pack_dataset.resize_short_side(expected, 9)
    assert kept is expected  # already at the size: untouched


def test_crop_on_device_items_of_a_packed_store_are_writable_copies(packed):
    frames, out = packed
    common = dict(names=NAMES, sampler=FrameSampler(4, train=False, num_clip=2), seed=0,
                  builder=ItemBuilder(IFNSEncoder(2).request, 16, train=False, num_crop=3, crop_on_device=True))
    packed_ds = ClipDataset(opener=PackedOpener(out), **common)
    frames_ds = ClipDataset(opener=lambda name: FrameFolderClip(frames / name, name), **common)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on a read-only (memory-mapped) array
        item = packed_ds[0]
    assert torch.equal(item["frames"], frames_ds[0]["frames"])
