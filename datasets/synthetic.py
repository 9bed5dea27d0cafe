"""Writes the synthetic sets and keeps them in the cache: LPS-NTU (:mod:`datasets.synthetic_ntu`)
and P3AR-PKU (:mod:`datasets.synthetic_pku`), both drawn with :mod:`datasets.synthetic_scene`.

Each scene is written four times from the same rendering: raw and degraded by a privacy camera
(``device``: the LPS film of :func:`datasets.lps.simulate_lps`, or the lensless or coded-aperture
camera of :mod:`datasets.optics`, at ``lps_level``, its noise seeded per clip; the degraded copy is
named ``lps`` whatever the camera), as JPEG frame folders and as mp4 videos::

    <out>/raw/frames/<name>/00000.jpg ...   <out>/lps/frames/<name>/00000.jpg ...
    <out>/raw/videos/<name>.mp4             <out>/lps/videos/<name>.mp4
    <out>/meta.json

Every clip draws from its own seeded generators (never the global RNG), so files do not depend
on the worker schedule: the same seed gives byte-identical files. The fixed parameters of each
set are listed in its scene module's docstring; the writing ones (JPEG quality 95, ``mp4v`` at
30 fps, the film of :class:`datasets.lps.LPSFilm` with its defaults) are named below.
"""
from __future__ import annotations

import fcntl
import json
import logging
import multiprocessing
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from tqdm import tqdm
from yacs.config import CfgNode

from datasets import synthetic_ntu, synthetic_pku
from datasets.optics import CAMERAS, simulate_device
from datasets.synthetic_ntu import GENERATOR_VERSION, ClipKey, clip_keys, render_clip
from utils.paths import synthetic_cache_dir
from utils.errors import UserError

logger = logging.getLogger(__name__)

__all__ = ["COPIES", "DEFAULT_WORKERS", "GENERATOR_VERSION", "ClipKey", "clip_keys", "render_clip",
           "generate", "generate_pku", "ensure_synthetic"]

JPEG_QUALITY = 95  # cv2.IMWRITE_JPEG_QUALITY of every frame
VIDEO_FOURCC = "mp4v"
VIDEO_FPS = 30.0
FRAME_NAME = "{:05d}.jpg"
META_FILE = "meta.json"
COPIES = ("raw", "lps")  # the clean and the camera-degraded copy (DATA.SYNTHETIC.SOURCE choices)
DEFAULT_WORKERS = 2  # rendering processes (the demo target is a 2-core machine)
MIN_CLIPS_PER_WORKER = 64  # fewer clips than this per process do not repay a worker's start-up
# scene -> (renders a key's raw frames, the seed of its film noise)
_SCENES: dict[str, tuple[Callable[..., np.ndarray], Callable[..., int]]] = {
    "ntu": (synthetic_ntu.render_clip, synthetic_ntu.lps_noise_seed),
    "pku": (synthetic_pku.render_pku_clip, synthetic_pku.lps_noise_seed),
}
_SET_NAMES = {"ntu": "synthetic LPS-NTU", "pku": "synthetic P3AR-PKU"}  # in logs and progress bars


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs to render and write one clip."""

    scene: str
    key: object  # ClipKey (ntu) or datasets.pku.PkuName (pku)
    root: str
    seed: int
    size: int
    num_frames: int
    lps_level: int
    device: str


def _write_frames(folder: Path, frames: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / FRAME_NAME.format(i)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def _write_video(path: Path, frames: np.ndarray) -> None:
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), VIDEO_FPS,
                             (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"opencv cannot write {path} with fourcc {VIDEO_FOURCC}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _make_clip(job: _Job) -> str:
    """Renders one clip and writes its four copies; returns its name."""
    key, root = job.key, Path(job.root)
    render, noise_seed = _SCENES[job.scene]
    raw = render(key, seed=job.seed, size=job.size, num_frames=job.num_frames)
    generator = torch.Generator().manual_seed(noise_seed(key, job.seed))
    frames = torch.from_numpy(raw).permute(0, 3, 1, 2)  # [T, 3, H, W]
    lps = simulate_device(frames, job.device, job.lps_level, generator).permute(0, 2, 3, 1).contiguous().numpy()
    for copy, data in zip(COPIES, (raw, lps)):
        _write_frames(root / copy / "frames" / key.name, data)
        _write_video(root / copy / "videos" / f"{key.name}.mp4", data)
    return key.name


def _init_worker() -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _check_request(out: Path, counts: dict[str, int], *, size: int, num_frames: int, workers: int,
                   lps_level: int, device: str) -> None:
    """Refuses an existing output folder and counts or sizes out of range (UserError)."""
    if out.exists():
        raise UserError(f"synthetic output {out} already exists: delete it or choose another folder")
    for what, value in {**counts, "size": size, "num_frames": num_frames, "workers": workers}.items():
        if value < 1:
            raise UserError(f"synthetic {what} must be >= 1, got {value}")
    if not 1 <= lps_level <= 3:
        raise UserError(f"synthetic lps_level must be 1, 2 or 3, got {lps_level}")
    if device not in CAMERAS:
        raise UserError(f"synthetic device must be one of {', '.join(CAMERAS)}, got {device!r}")


def _write_set(out: Path, scene: str, keys: list, meta: dict, *, seed: int, size: int, num_frames: int,
               lps_level: int, device: str, workers: int, progress: bool) -> Path:
    """Renders ``keys`` into a temporary sibling of ``out``, writes ``meta`` and renames it to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    for copy in COPIES:
        (tmp / copy / "videos").mkdir(parents=True)
    jobs = [_Job(scene, key, str(tmp), seed, size, num_frames, lps_level, device) for key in keys]
    try:
        _run_jobs(jobs, workers=workers, progress=progress, desc=_SET_NAMES[scene])
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def generate(out: Path, *, seed: int, size: int, num_frames: int, num_actions: int,
             num_performers: int, num_setups: int, num_cameras: int, num_replications: int,
             lps_level: int, device: str = "film", workers: int = DEFAULT_WORKERS, progress: bool = True) -> Path:
    """Writes a synthetic LPS-NTU set into ``out`` (through a temporary sibling, renamed at the end).

    Args:
        out: destination folder; must not exist yet.
        seed: dataset seed (same seed and sizes, same bytes).
        size: frame side in pixels.
        num_frames: frames per clip.
        num_actions: actions A.
        num_performers: performers P.
        num_setups: setups S.
        num_cameras: cameras C.
        num_replications: replications R.
        lps_level: privacy level of the degraded copy (1..3; the film's layers).
        device: the camera of the degraded copy: film | lensless | coded_aperture.
        workers: processes rendering clips (1 = in this process).
        progress: show a progress bar.

    Returns:
        ``out``.
    """
    out = Path(out)
    counts = {"actions": num_actions, "performers": num_performers, "setups": num_setups,
              "cameras": num_cameras, "replications": num_replications}
    _check_request(out, counts, size=size, num_frames=num_frames, workers=workers, lps_level=lps_level,
                   device=device)
    keys = clip_keys(num_actions=num_actions, num_performers=num_performers,
                     num_setups=num_setups, num_cameras=num_cameras,
                     num_replications=num_replications)
    meta = {"generator_version": GENERATOR_VERSION, "seed": seed, "size": size,
            "num_frames": num_frames, "counts": counts, "lps_level": lps_level, "device": device,
            "fps": VIDEO_FPS, "jpeg_quality": JPEG_QUALITY,
            "names": [key.name for key in keys]}
    return _write_set(out, "ntu", keys, meta, seed=seed, size=size, num_frames=num_frames,
                      lps_level=lps_level, device=device, workers=workers, progress=progress)


def generate_pku(out: Path, *, seed: int, size: int, num_frames: int, num_actions: int, num_people: int,
                 num_setups: int = synthetic_pku.NUM_SETUPS, num_cameras: int = synthetic_pku.NUM_CAMERAS,
                 lps_level: int, device: str = "film", workers: int = DEFAULT_WORKERS,
                 progress: bool = True) -> Path:
    """Writes a synthetic P3AR-PKU set into ``out`` (through a temporary sibling, renamed at the end).

    ``meta.json`` also records every person's drawn attributes (``people``).

    Args:
        out: destination folder; must not exist yet.
        seed: dataset seed (same seed and sizes, same bytes).
        size: frame side in pixels.
        num_frames: frames per clip.
        num_actions: actions A.
        num_people: people P (their attributes are drawn once, from the seed).
        num_setups: setups S (1 or 2; xset: setup 1 trains, setup 2 validates).
        num_cameras: cameras R (1 to 3).
        lps_level: privacy level of the degraded copy (1..3; the film's layers).
        device: the camera of the degraded copy: film | lensless | coded_aperture.
        workers: processes rendering clips (1 = in this process).
        progress: show a progress bar.

    Returns:
        ``out``.
    """
    out = Path(out)
    counts = {"actions": num_actions, "people": num_people, "setups": num_setups, "cameras": num_cameras}
    _check_request(out, counts, size=size, num_frames=num_frames, workers=workers, lps_level=lps_level,
                   device=device)
    synthetic_pku.check_counts(num_setups=num_setups, num_cameras=num_cameras)
    keys = synthetic_pku.pku_clip_keys(seed=seed, num_actions=num_actions, num_people=num_people,
                                       num_setups=num_setups, num_cameras=num_cameras)
    meta = {"dataset": "pku", "generator_version": synthetic_pku.GENERATOR_VERSION, "seed": seed,
            "size": size, "num_frames": num_frames, "counts": counts, "lps_level": lps_level, "device": device,
            "fps": VIDEO_FPS, "jpeg_quality": JPEG_QUALITY,
            "people": {str(p): a for p, a in synthetic_pku.person_attributes(seed, num_people).items()},
            "names": [key.name for key in keys]}
    return _write_set(out, "pku", keys, meta, seed=seed, size=size, num_frames=num_frames,
                      lps_level=lps_level, device=device, workers=workers, progress=progress)


def _run_jobs(jobs: list[_Job], *, workers: int, progress: bool, desc: str) -> None:
    bar = tqdm(total=len(jobs), desc=desc, unit="clip", disable=not progress)
    workers = min(workers, max(1, len(jobs) // MIN_CLIPS_PER_WORKER))
    if workers == 1:
        for job in jobs:
            _make_clip(job)
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")
        chunk = max(1, len(jobs) // (workers * 16))
        with context.Pool(workers, initializer=_init_worker) as pool:
            for _ in pool.imap_unordered(_make_clip, jobs, chunksize=chunk):
                bar.update()
    bar.close()


def _generate_from_config(cfg: CfgNode, out: Path) -> None:
    """Generates the synthetic set ``cfg`` asks for into ``out``."""
    syn = cfg.DATA.SYNTHETIC
    common = dict(seed=syn.SEED, size=syn.SIZE, num_frames=syn.NUM_FRAMES, num_actions=syn.NUM_ACTIONS,
                  num_setups=syn.NUM_SETUPS, num_cameras=syn.NUM_CAMERAS, lps_level=syn.LPS_LEVEL,
                  device=syn.DEVICE,
                  workers=min(DEFAULT_WORKERS, os.cpu_count() or 1), progress=False)
    if cfg.DATA.DATASET == "pku":
        generate_pku(out, num_people=syn.NUM_PERFORMERS, **common)
    else:
        generate(out, num_performers=syn.NUM_PERFORMERS, num_replications=syn.NUM_REPLICATIONS, **common)


def _check_config(cfg: CfgNode) -> None:
    """Refuses synthetic settings the dataset's names cannot express (UserError)."""
    syn = cfg.DATA.SYNTHETIC
    if cfg.DATA.DATASET == "pku":
        if syn.NUM_REPLICATIONS != 1:
            raise UserError(f"DATA.SYNTHETIC.NUM_REPLICATIONS must be 1 for DATA.DATASET pku (P3AR-PKU "
                            f"names have no replication field), got {syn.NUM_REPLICATIONS}")
        synthetic_pku.check_counts(num_setups=syn.NUM_SETUPS, num_cameras=syn.NUM_CAMERAS)


def ensure_synthetic(cfg: CfgNode) -> Path:
    """Returns the synthetic set of ``cfg`` (``DATA.SYNTHETIC.*``), generating it when missing:
    P3AR-PKU for ``DATA.DATASET pku`` (``NUM_PERFORMERS`` people, ``NUM_REPLICATIONS`` 1), else
    LPS-NTU.

    Safe when several processes (DDP ranks) call it at once: one generates under a file lock while
    the others wait, and the set only appears complete (atomic rename).

    Args:
        cfg: the experiment config.

    Raises:
        UserError: settings the dataset's names cannot express, or an incomplete cache folder.
    """
    _check_config(cfg)
    out = synthetic_cache_dir(cfg)
    if (out / META_FILE).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / META_FILE).is_file():
            return out
        if out.exists():
            raise UserError(f"synthetic cache {out} is incomplete (no {META_FILE}): delete it")
        for stale in out.parent.glob(f".{out.name}.tmp-*"):  # left by a killed generation
            shutil.rmtree(stale, ignore_errors=True)
        what = _SET_NAMES["pku" if cfg.DATA.DATASET == "pku" else "ntu"]
        logger.info("generating the %s set into %s", what, out)
        start = time.time()
        _generate_from_config(cfg, out)
        logger.info("%s set generated in %.1f s: %s", what, time.time() - start, out)
    return out
