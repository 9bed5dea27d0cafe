"""Synthetic LPS-NTU generator: determinism, layout, separated factors, concurrent cache use."""
import hashlib
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datasets.optics import simulate_device
from datasets.synthetic import JPEG_QUALITY, clip_keys, ensure_synthetic, generate, render_clip
from datasets.synthetic_ntu import lps_noise_seed
from utils.config import load_config
from utils.paths import synthetic_cache_dir
from utils.errors import UserError

TINY = dict(seed=5, size=16, num_frames=8, num_actions=2, num_performers=2, num_setups=2,
            num_cameras=1, num_replications=1, lps_level=2, workers=1, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "set", **TINY)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _frames(root: Path, copy: str, name: str) -> np.ndarray:
    """[T, H, W, 3] float RGB frames of one clip."""
    files = sorted((root / copy / "frames" / name).glob("*.jpg"))
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]).astype(np.float32)


def _leave_one_out_accuracy(features: dict, label_of, group_of) -> float:
    """Nearest class mean, each sample against the others of its group (same setup and camera)."""
    correct = 0
    for name, feat in features.items():
        means = {}
        for other, other_feat in features.items():
            if other != name and group_of(other) == group_of(name):
                means.setdefault(label_of(other), []).append(other_feat)
        dist = {label: np.linalg.norm(feat - np.mean(f, axis=0)) for label, f in means.items()}
        correct += min(dist, key=dist.get) == label_of(name)
    return correct / len(features)


def test_layout_names_and_meta(tiny):
    names = [k.name for k in clip_keys(num_actions=2, num_performers=2, num_setups=2, num_cameras=1,
                                       num_replications=1)]
    assert names[0] == "S001C001P001R001A001" and len(names) == 8
    meta = json.loads((tiny / "meta.json").read_text())
    assert meta["names"] == names
    assert (meta["seed"], meta["size"], meta["num_frames"], meta["lps_level"]) == (5, 16, 8, 2)
    assert meta["counts"] == {"actions": 2, "performers": 2, "setups": 2, "cameras": 1, "replications": 1}
    for copy in ("raw", "lps"):
        assert sorted(p.name for p in (tiny / copy / "frames").iterdir()) == names
        for name in names:
            files = sorted(p.name for p in (tiny / copy / "frames" / name).iterdir())
            assert files == [f"{i:05d}.jpg" for i in range(8)]
            capture = cv2.VideoCapture(str(tiny / copy / "videos" / f"{name}.mp4"))
            decoded = 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                assert frame.shape == (16, 16, 3)
                decoded += 1
            capture.release()
            assert decoded == 8
    assert not list(tiny.parent.glob(".*tmp*"))  # the temporary folder was renamed away


def test_same_seed_same_bytes(tiny, tmp_path):
    again = generate(tmp_path / "again", **TINY)
    assert _hashes(again) == _hashes(tiny)
    other = generate(tmp_path / "other", **{**TINY, "seed": 6})
    assert _hashes(other) != _hashes(tiny)


def test_existing_output_is_refused(tiny):
    with pytest.raises(UserError, match="already exists"):
        generate(tiny, **TINY)


def test_identity_from_one_clean_frame(tiny):
    names = json.loads((tiny / "meta.json").read_text())["names"]
    first = {n: _frames(tiny, "raw", n)[0].ravel() for n in names}
    assert _leave_one_out_accuracy(first, lambda n: n[8:12], lambda n: n[:8]) == 1.0


def _global_flow(gray: np.ndarray) -> np.ndarray:
    """RMS of the global (vx, vy) motion between consecutive frames, by least squares on the
    brightness-constancy equation It + vx Ix + vy Iy = 0, normalised to unit length."""
    flows = []
    for prev, nxt in zip(gray[:-1], gray[1:]):
        mean = (prev + nxt) / 2
        ix, iy = np.gradient(mean, axis=1).ravel(), np.gradient(mean, axis=0).ravel()
        it = (nxt - prev).ravel()
        flows.append(np.linalg.lstsq(np.stack([ix, iy], 1), -it, rcond=None)[0])
    rms = np.sqrt(np.mean(np.square(flows), axis=0))
    return rms / np.linalg.norm(rms)


def test_actions_differ_in_motion(tiny):
    """Action 1 (bob) moves vertically, action 2 (sway) horizontally, whoever performs them."""
    names = json.loads((tiny / "meta.json").read_text())["names"]
    flow = {name: _global_flow(_frames(tiny, "raw", name).mean(-1)) for name in names}
    assert all(flow[n][1] > flow[n][0] for n in names if n.endswith("A001"))
    assert all(flow[n][0] > flow[n][1] for n in names if n.endswith("A002"))


def test_lps_copy_is_blurrier(tiny):
    for name in json.loads((tiny / "meta.json").read_text())["names"]:
        raw, lps = _frames(tiny, "raw", name), _frames(tiny, "lps", name)
        grad = [float(np.square(np.diff(x, axis=2)).mean() + np.square(np.diff(x, axis=1)).mean())
                for x in (raw, lps)]
        assert grad[1] < 0.6 * grad[0]


def test_device_copy_is_the_cameras_measurement_of_the_raw_copy(tmp_path):
    """--device lensless: the degraded copy is datasets.optics' lensless measurement of the same
    rendering with the clip's noise seed (to JPEG precision), not the film's; the cache folder and
    meta.json say which camera."""
    root = generate(tmp_path / "lensless", **{**TINY, "device": "lensless", "num_actions": 1, "num_performers": 1})
    meta = json.loads((root / "meta.json").read_text())
    assert meta["device"] == "lensless" and meta["lps_level"] == 2
    key = clip_keys(num_actions=1, num_performers=1, num_setups=2, num_cameras=1, num_replications=1)[0]
    raw = torch.from_numpy(render_clip(key, seed=5, size=16, num_frames=8)).permute(0, 3, 1, 2)
    written = _frames(root, "lps", key.name)
    for device in ("lensless", "film"):
        frames = simulate_device(raw, device, 2, torch.Generator().manual_seed(lps_noise_seed(key, 5)))
        jpeg = [cv2.imdecode(cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR),
                                          [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1], cv2.IMREAD_COLOR)
                for f in frames.permute(0, 2, 3, 1).numpy()]
        expected = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in jpeg]).astype(np.float32)
        assert np.array_equal(written, expected) == (device == "lensless"), device
    film = load_config(opts=["DATA.SYNTHETIC.CACHE", str(tmp_path)])
    lensless = load_config(opts=["DATA.SYNTHETIC.CACHE", str(tmp_path), "DATA.SYNTHETIC.DEVICE", "lensless"])
    assert synthetic_cache_dir(film).name.endswith("_l2") and "lensless" not in synthetic_cache_dir(film).name
    assert synthetic_cache_dir(lensless).name == synthetic_cache_dir(film).name[:-3] + "_lensless_l2"
    with pytest.raises(UserError, match="device"):
        generate(tmp_path / "bad", **{**TINY, "device": "pinhole"})


def test_ensure_synthetic_generates_once_under_concurrency(tmp_path):
    cfg = load_config(opts=["DATA.SYNTHETIC.CACHE", str(tmp_path), "DATA.SYNTHETIC.SIZE", "16",
                            "DATA.SYNTHETIC.NUM_FRAMES", "4", "DATA.SYNTHETIC.NUM_ACTIONS", "2",
                            "DATA.SYNTHETIC.NUM_PERFORMERS", "1", "DATA.SYNTHETIC.NUM_SETUPS", "1",
                            "DATA.SYNTHETIC.NUM_CAMERAS", "1", "DATA.SYNTHETIC.NUM_REPLICATIONS", "1"])
    results, errors = [], []

    def call() -> None:
        try:
            results.append(ensure_synthetic(cfg))
        except Exception as error:  # noqa: BLE001 - collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == [synthetic_cache_dir(cfg)] * 2
    meta = results[0] / "meta.json"
    stamp = meta.stat().st_mtime_ns
    assert ensure_synthetic(cfg) == results[0] and meta.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [results[0].name]


def test_synth_ntu_tool(tmp_path, capsys):
    from tools import synth_ntu

    args = ["--out", str(tmp_path / "s"), "--seed", "1", "--size", "16", "--frames", "4", "--actions", "2",
            "--performers", "1", "--setups", "1", "--cameras", "1", "--replications", "1", "--workers", "1"]
    assert synth_ntu.main(args) == 0
    assert "wrote 2 clips" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "s" / "meta.json").read_text())["names"]) == 2
    assert synth_ntu.main(args) == 2  # the folder exists now: one-line error
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "\n" not in err
