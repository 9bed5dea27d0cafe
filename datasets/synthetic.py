"""Synthetic LPS-NTU: a small, deterministic, NTU-named dataset of a blob "person" acting.

Every clip ``S{setup:03d}C{camera:03d}P{performer:03d}R{rep:03d}A{action:03d}`` renders one scene
whose factors are separated on purpose:

* **action** (A) changes ONLY the motion: one of :data:`MOTIONS` (bob, sway, circle, wave right,
  wave left, jumping jack, jump, tilt, approach, walk, squat, punch); beyond twelve actions the
  pattern repeats at a higher temporal frequency (``1 + (A - 1) // 12`` cycles per clip);
* **performer** (P) changes ONLY the appearance: shirt, trousers and head colours (hues spread by
  the golden ratio), shirt stripes, body width and height - recognisable from one clean frame;
* **setup** (S) changes the background (colour gradient, static furniture blocks) and lighting
  (gain, colour cast, left-right light falloff);
* **camera** (C) changes the viewpoint: even cameras are mirrored, and each camera has its own
  zoom and horizontal offset;
* **replication** (R) adds small random variations: phase, speed, position.

Each clip gets its own random generator seeded from ``(seed, S, C, P, R, A)`` (never the global
RNG), so files do not depend on the worker schedule: the same seed gives byte-identical files.
Each scene is written four times from the same rendering: raw and LPS-degraded
(:func:`datasets.lps.simulate_lps` at ``lps_level``, seeded per clip), as JPEG frame folders and as
mp4 videos::

    <out>/raw/frames/<name>/00000.jpg ...   <out>/lps/frames/<name>/00000.jpg ...
    <out>/raw/videos/<name>.mp4             <out>/lps/videos/<name>.mp4
    <out>/meta.json

Fixed benchmark parameters (frozen with ``GENERATOR_VERSION = 1``; they must not be tuned later
to favour any method): the demo set of ``DATA.SYNTHETIC`` (seed 0, 32 px, 24 frames, 10 actions,
10 performers, 4 setups, 2 cameras, 2 replications = 1600 clips, LPS level 2); JPEG quality 95,
``mp4v`` at 30 fps; motions of amplitude 0.14 frame (shifts), 0.45 rad (tilt), +-30 % (approach),
one cycle per clip with +-15 % speed, random phase and +-0.04 frame position per clip; the film of
:class:`datasets.lps.LPSFilm` with its defaults (core 0.002, halo 0.04 of the frame side, 45 %
scattered, 12 % glare, 15 % chroma loss per layer, transmittance 0.88, 4000 photo-electrons at
white, read noise 0.003), LPS noise seeded per clip. All constants are named below.
"""
from __future__ import annotations

import colorsys
import fcntl
import json
import logging
import math
import multiprocessing
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm
from yacs.config import CfgNode

from datasets.lps import simulate_lps
from utils.paths import synthetic_cache_dir
from utils.errors import UserError

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when the rendering changes (recorded in meta.json)
JPEG_QUALITY = 95  # cv2.IMWRITE_JPEG_QUALITY of every frame
VIDEO_FOURCC = "mp4v"
VIDEO_FPS = 30.0
FRAME_NAME = "{:05d}.jpg"
META_FILE = "meta.json"
COPIES = ("raw", "lps")  # the clean and the film-degraded copy (DATA.SYNTHETIC.SOURCE choices)
GOLDEN_RATIO = (1 + math.sqrt(5)) / 2
DEFAULT_WORKERS = 2  # rendering processes (the demo target is a 2-core machine)
MIN_CLIPS_PER_WORKER = 64  # fewer clips than this per process do not repay a worker's start-up
EDGE_SHARPNESS = 1.5  # soft edge of a shape, in pixels (anti-aliasing)

MOTIONS = ("bob", "sway", "circle", "wave_right", "wave_left", "jumping_jack", "jump", "tilt",
           "approach", "walk", "squat", "punch")

# body geometry, in scene units (the scene is the unit square, y pointing down)
BODY_CENTER = (0.5, 0.55)  # torso centre at rest
TORSO_HALF_WIDTH = 0.11
TORSO_HALF_HEIGHT = 0.17
HEAD_RADIUS = 0.075
LIMB_LENGTH = 0.2
LIMB_HALF_THICKNESS = 0.035
ARM_REST_ANGLE = 0.35  # radians from hanging straight down
LEG_REST_ANGLE = 0.2
SHOULDER_SPREAD = 0.8  # limbs attach this fraction of the torso half-width off the midline
PERFORMER_SIZE_RANGE = 0.25  # body width/height vary by +-25% between performers
STRIPE_CONTRAST = 0.35  # shirt stripes darken the shirt colour by this fraction
MAX_STRIPES = 3  # stripe frequencies 0 (plain) .. MAX_STRIPES across the shirt
SHIRT_SATURATION, SHIRT_VALUE = 0.85, 0.9  # shirt hue = performer / golden ratio
TROUSERS_SATURATION, TROUSERS_VALUE = 0.6, (0.45, 0.75)  # opposite hue, random darkness
SKIN_HUE, SKIN_SATURATION, SKIN_VALUE = (0.05, 0.13), (0.3, 0.7), 0.95

# motion amplitudes (scene units, radians or scale)
SHIFT_AMPLITUDE = 0.14
ARM_SWING = 1.6  # jumping-jack arm opening, radians
WAVE_CENTER = 3 * math.pi / 4  # a waving arm swings between horizontal and overhead
WAVE_AMPLITUDE = math.pi / 4
TILT_AMPLITUDE = 0.45
APPROACH_AMPLITUDE = 0.3
SQUAT_DEPTH = 0.25
WALK_LEG_SWING = 0.6

# replication jitter
PHASE_JITTER = 2 * math.pi
SPEED_JITTER = 0.15
POSITION_JITTER = 0.04

# setups (background, lighting) and cameras (viewpoint)
LIGHT_GAIN_RANGE = (0.65, 1.15)
LIGHT_CAST = 0.12  # per-channel colour cast of the light
LIGHT_FALLOFF = 0.35  # brightness difference between the lit and the far side
FURNITURE_BLOCKS = 3
CAMERA_ZOOM_RANGE = (0.85, 1.2)
CAMERA_OFFSET = 0.08
BACKGROUND_LIGHTNESS = (0.25, 0.75)  # value of the wall colours (top and bottom of a gradient)
BACKGROUND_SATURATION = 0.35
FURNITURE_CORNER = (-0.1, 0.8)  # range of a block's top-left corner (scene units)
FURNITURE_SIDE = (0.1, 0.35)
FURNITURE_SATURATION, FURNITURE_VALUE = 0.5, (0.2, 0.9)


@dataclass(frozen=True)
class ClipKey:
    """The NTU factors of one clip (all 1-based).

    Args:
        setup: setup number S.
        camera: camera number C.
        performer: performer number P.
        rep: replication number R.
        action: action number A.
    """

    setup: int
    camera: int
    performer: int
    rep: int
    action: int

    @property
    def name(self) -> str:
        """The NTU name ``SsssCcccPpppRrrrAaaa``."""
        return (f"S{self.setup:03d}C{self.camera:03d}P{self.performer:03d}"
                f"R{self.rep:03d}A{self.action:03d}")


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs to render and write one clip."""

    key: ClipKey
    root: str
    seed: int
    size: int
    num_frames: int
    lps_level: int


def clip_keys(*, num_actions: int, num_performers: int, num_setups: int, num_cameras: int,
              num_replications: int) -> list[ClipKey]:
    """All clips of a synthetic set, in name order.

    Args:
        num_actions: actions A = 1..num_actions.
        num_performers: performers P.
        num_setups: setups S.
        num_cameras: cameras C.
        num_replications: replications R.
    """
    return [ClipKey(s, c, p, r, a)
            for s in range(1, num_setups + 1) for c in range(1, num_cameras + 1)
            for p in range(1, num_performers + 1) for r in range(1, num_replications + 1)
            for a in range(1, num_actions + 1)]


def _rng(seed: int, *parts: int) -> np.random.Generator:
    return np.random.default_rng([seed, *parts])


def _hue_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32)


def _ellipse(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray, half_w: float,
             half_h: np.ndarray | float, angle: np.ndarray | float, pixel: float) -> np.ndarray:
    """Soft (anti-aliased) mask of a rotated ellipse; broadcasts frames [T, 1, 1] over the grid."""
    cos, sin = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    u = (dx * cos + dy * sin) / half_w
    v = (-dx * sin + dy * cos) / half_h
    radius = np.sqrt(u * u + v * v)
    return np.clip((1 - radius) * np.minimum(half_w, half_h) / (EDGE_SHARPNESS * pixel) + 0.5, 0, 1)


def _motion(action: int, t: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-frame pose of ``action`` (1-based) at normalised times ``t`` in [0, 1), shapes [T]."""
    pattern = MOTIONS[(action - 1) % len(MOTIONS)]
    cycles = 1 + (action - 1) // len(MOTIONS)
    speed = 1 + rng.uniform(-SPEED_JITTER, SPEED_JITTER)
    phase = 2 * math.pi * cycles * speed * t + rng.uniform(0, PHASE_JITTER)
    zeros = np.zeros_like(t)
    pose = {"dx": zeros.copy(), "dy": zeros.copy(), "scale": np.ones_like(t), "tilt": zeros.copy(),
            "squat": zeros.copy(), "arm_l": zeros + ARM_REST_ANGLE, "arm_r": zeros + ARM_REST_ANGLE,
            "leg_l": zeros + LEG_REST_ANGLE, "leg_r": zeros + LEG_REST_ANGLE}
    swing = np.sin(phase)
    if pattern == "bob":
        pose["dy"] = SHIFT_AMPLITUDE * swing
    elif pattern == "sway":
        pose["dx"] = SHIFT_AMPLITUDE * swing
    elif pattern == "circle":
        pose["dx"], pose["dy"] = SHIFT_AMPLITUDE * np.cos(phase), SHIFT_AMPLITUDE * swing
    elif pattern == "wave_right":
        pose["arm_r"] = WAVE_CENTER + WAVE_AMPLITUDE * swing
    elif pattern == "wave_left":
        pose["arm_l"] = WAVE_CENTER + WAVE_AMPLITUDE * swing
    elif pattern == "jumping_jack":
        open_ = (1 + swing) / 2
        pose["arm_l"] = pose["arm_r"] = ARM_REST_ANGLE + ARM_SWING * open_
        pose["leg_l"] = pose["leg_r"] = LEG_REST_ANGLE + WALK_LEG_SWING * open_
    elif pattern == "jump":
        pose["dy"] = -2 * SHIFT_AMPLITUDE * np.abs(swing)
    elif pattern == "tilt":
        pose["tilt"] = TILT_AMPLITUDE * swing
    elif pattern == "approach":
        pose["scale"] = 1 + APPROACH_AMPLITUDE * swing
    elif pattern == "walk":
        pose["dx"] = SHIFT_AMPLITUDE * 2 * (t - 0.5) * speed
        pose["leg_l"] = LEG_REST_ANGLE + WALK_LEG_SWING * swing
        pose["leg_r"] = LEG_REST_ANGLE - WALK_LEG_SWING * swing
    elif pattern == "squat":
        pose["squat"] = SQUAT_DEPTH * (1 + swing) / 2
    else:  # punch: arms thrust out horizontally in turn
        pose["arm_l"] = ARM_REST_ANGLE + (math.pi / 2 - ARM_REST_ANGLE) * np.maximum(swing, 0) * 2
        pose["arm_r"] = ARM_REST_ANGLE + (math.pi / 2 - ARM_REST_ANGLE) * np.maximum(-swing, 0) * 2
    return pose


def _appearance(seed: int, performer: int) -> dict[str, np.ndarray | float]:
    rng = _rng(seed, 1, performer)
    hue = performer / GOLDEN_RATIO
    return {"shirt": _hue_rgb(hue, SHIRT_SATURATION, SHIRT_VALUE),
            "trousers": _hue_rgb(hue + 0.5, TROUSERS_SATURATION, rng.uniform(*TROUSERS_VALUE)),
            "head": _hue_rgb(rng.uniform(*SKIN_HUE), rng.uniform(*SKIN_SATURATION), SKIN_VALUE),
            "stripes": float(rng.integers(0, MAX_STRIPES + 1)),
            "width": 1 + PERFORMER_SIZE_RANGE * rng.uniform(-1, 1),
            "height": 1 + PERFORMER_SIZE_RANGE * rng.uniform(-1, 1)}


def _background(seed: int, setup: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Background image [H, W, 3] and light multiplier [H, W, 3] of a setup in scene coordinates."""
    rng = _rng(seed, 2, setup)
    top = _hue_rgb(rng.uniform(), BACKGROUND_SATURATION, rng.uniform(*BACKGROUND_LIGHTNESS))
    bottom = _hue_rgb(rng.uniform(), BACKGROUND_SATURATION, rng.uniform(*BACKGROUND_LIGHTNESS))
    ramp = np.clip(y, 0, 1)[..., None]
    image = top * (1 - ramp) + bottom * ramp
    for _ in range(FURNITURE_BLOCKS):
        x0, y0 = rng.uniform(*FURNITURE_CORNER, size=2)
        w, h = rng.uniform(*FURNITURE_SIDE, size=2)
        inside = ((x >= x0) & (x <= x0 + w) & (y >= y0) & (y <= y0 + h))[..., None]
        colour = _hue_rgb(rng.uniform(), FURNITURE_SATURATION, rng.uniform(*FURNITURE_VALUE))
        image = np.where(inside, colour, image)
    gain = rng.uniform(*LIGHT_GAIN_RANGE)
    cast = 1 + rng.uniform(-LIGHT_CAST, LIGHT_CAST, size=3).astype(np.float32)
    side = rng.choice([-1.0, 1.0])
    falloff = 1 - LIGHT_FALLOFF * (0.5 + side * (np.clip(x, 0, 1) - 0.5))
    return image.astype(np.float32), (gain * cast * falloff[..., None]).astype(np.float32)


def _channels_first(rgb: np.ndarray) -> np.ndarray:
    """An RGB colour [3] as [3, 1, 1, 1], to broadcast against [3, T, H, W]."""
    return np.asarray(rgb, dtype=np.float32).reshape(3, 1, 1, 1)


def render_clip(key: ClipKey, *, seed: int, size: int, num_frames: int) -> np.ndarray:
    """Renders the raw frames of one clip.

    Args:
        key: the clip's NTU factors.
        seed: dataset seed.
        size: frame side in pixels.
        num_frames: frames in the clip.

    Returns:
        uint8 RGB frames [T, H, W, 3].
    """
    rng = _rng(seed, 0, key.setup, key.camera, key.performer, key.rep, key.action)
    cam = _rng(seed, 3, key.camera)
    zoom = cam.uniform(*CAMERA_ZOOM_RANGE)
    offset = cam.uniform(-CAMERA_OFFSET, CAMERA_OFFSET)
    mirror = -1.0 if key.camera % 2 == 0 else 1.0
    pixel_centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    u, v = np.meshgrid(pixel_centres, pixel_centres)  # [H, W] image coordinates
    x = (mirror * (u - 0.5 - offset) / zoom + 0.5).astype(np.float32)  # scene coordinates
    y = ((v - 0.5) / zoom + 0.5).astype(np.float32)
    pixel = 1.0 / (size * zoom)  # one pixel in scene units
    background, light = _background(seed, key.setup, x, y)

    look = _appearance(seed, key.performer)
    t = np.arange(num_frames, dtype=np.float64) / num_frames
    pose = {k: val.astype(np.float32)[:, None, None] for k, val in _motion(key.action, t, rng).items()}
    jitter_x, jitter_y = (float(j) for j in rng.uniform(-POSITION_JITTER, POSITION_JITTER, size=2))
    scale = pose["scale"]
    half_w = TORSO_HALF_WIDTH * look["width"] * scale
    half_h = TORSO_HALF_HEIGHT * look["height"] * scale * (1 - pose["squat"])
    cx = BODY_CENTER[0] + jitter_x + pose["dx"]
    cy = BODY_CENTER[1] + jitter_y + pose["dy"] + TORSO_HALF_HEIGHT * pose["squat"]
    tilt = pose["tilt"]
    up_x, up_y = np.sin(tilt), -np.cos(tilt)  # unit vector from hips to neck
    across_x, across_y = np.cos(tilt), np.sin(tilt)  # unit vector to the performer's left

    x, y = x[None], y[None]  # [1, H, W] against poses [T, 1, 1]
    layers: list[tuple[np.ndarray, np.ndarray]] = []  # (mask [T, H, W], colour [3, T|1, H|1, W|1])
    limb = LIMB_LENGTH * scale
    thick = LIMB_HALF_THICKNESS * scale
    for side, arm, leg in ((1, "arm_l", "leg_l"), (-1, "arm_r", "leg_r")):
        for joint, angle, colour in ((1, arm, "shirt"), (-1, leg, "trousers")):
            jx = cx + joint * up_x * half_h + side * across_x * half_w * SHOULDER_SPREAD
            jy = cy + joint * up_y * half_h + side * across_y * half_w * SHOULDER_SPREAD
            direction = tilt + side * pose[angle]  # angle from hanging down, outwards
            ex, ey = jx + np.sin(direction) * limb / 2, jy + np.cos(direction) * limb / 2
            mask = _ellipse(x, y, ex, ey, thick, limb / 2, -direction, pixel)
            layers.append((mask, _channels_first(look[colour])))
    torso = _ellipse(x, y, cx, cy, half_w, half_h, tilt, pixel)
    along = ((x - cx) * up_x + (y - cy) * up_y) / half_h  # -1 (hips) .. 1 (neck)
    stripes = 1 - STRIPE_CONTRAST * (np.cos(math.pi * look["stripes"] * along) > 0) * (look["stripes"] > 0)
    layers.append((torso, _channels_first(look["shirt"]) * stripes[None]))
    head_r = HEAD_RADIUS * scale * look["height"]
    hx = cx + up_x * (half_h + head_r)
    hy = cy + up_y * (half_h + head_r)
    layers.append((_ellipse(x, y, hx, hy, head_r, head_r, 0.0, pixel), _channels_first(look["head"])))

    # composite channel-first (numpy broadcasts slowly over a trailing axis of 3)
    image = np.broadcast_to(background.transpose(2, 0, 1)[:, None], (3, num_frames, size, size))
    for mask, colour in layers:
        image = image + mask[None] * (colour - image)  # [3, T, H, W]
    image = (image * light.transpose(2, 0, 1)[:, None]).transpose(1, 2, 3, 0)  # [T, H, W, 3]
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


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
    raw = render_clip(key, seed=job.seed, size=job.size, num_frames=job.num_frames)
    noise_seed = int(_rng(job.seed, 4, key.setup, key.camera, key.performer, key.rep,
                          key.action).integers(2 ** 62))
    generator = torch.Generator().manual_seed(noise_seed)
    frames = torch.from_numpy(raw).permute(0, 3, 1, 2)  # [T, 3, H, W]
    lps = simulate_lps(frames, job.lps_level, generator).permute(0, 2, 3, 1).contiguous().numpy()
    for copy, data in zip(COPIES, (raw, lps)):
        _write_frames(root / copy / "frames" / key.name, data)
        _write_video(root / copy / "videos" / f"{key.name}.mp4", data)
    return key.name


def _init_worker() -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def generate(out: Path, *, seed: int, size: int, num_frames: int, num_actions: int,
             num_performers: int, num_setups: int, num_cameras: int, num_replications: int,
             lps_level: int, workers: int = DEFAULT_WORKERS, progress: bool = True) -> Path:
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
        lps_level: film layers of the degraded copy (1..3).
        workers: processes rendering clips (1 = in this process).
        progress: show a progress bar.

    Returns:
        ``out``.
    """
    out = Path(out)
    if out.exists():
        raise UserError(f"synthetic output {out} already exists: delete it or choose another folder")
    counts = {"actions": num_actions, "performers": num_performers, "setups": num_setups,
              "cameras": num_cameras, "replications": num_replications}
    for what, value in {**counts, "size": size, "num_frames": num_frames, "workers": workers}.items():
        if value < 1:
            raise UserError(f"synthetic {what} must be >= 1, got {value}")
    if not 1 <= lps_level <= 3:
        raise UserError(f"synthetic lps_level must be 1, 2 or 3, got {lps_level}")
    keys = clip_keys(num_actions=num_actions, num_performers=num_performers,
                     num_setups=num_setups, num_cameras=num_cameras,
                     num_replications=num_replications)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    for copy in COPIES:
        (tmp / copy / "videos").mkdir(parents=True)
    jobs = [_Job(key, str(tmp), seed, size, num_frames, lps_level) for key in keys]
    try:
        _run_jobs(jobs, workers=workers, progress=progress)
        meta = {"generator_version": GENERATOR_VERSION, "seed": seed, "size": size,
                "num_frames": num_frames, "counts": counts, "lps_level": lps_level,
                "fps": VIDEO_FPS, "jpeg_quality": JPEG_QUALITY,
                "names": [key.name for key in keys]}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _run_jobs(jobs: list[_Job], *, workers: int, progress: bool) -> None:
    bar = tqdm(total=len(jobs), desc="synthetic LPS-NTU", unit="clip", disable=not progress)
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


def ensure_synthetic(cfg: CfgNode) -> Path:
    """Returns the synthetic set of ``cfg`` (``DATA.SYNTHETIC.*``), generating it when missing.

    Safe when several processes (DDP ranks) call it at once: one generates under a file lock while
    the others wait, and the set only appears complete (atomic rename).

    Args:
        cfg: the experiment config.
    """
    syn = cfg.DATA.SYNTHETIC
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
        logger.info("generating the synthetic LPS-NTU set into %s", out)
        start = time.time()
        generate(out, seed=syn.SEED, size=syn.SIZE, num_frames=syn.NUM_FRAMES,
                 num_actions=syn.NUM_ACTIONS, num_performers=syn.NUM_PERFORMERS,
                 num_setups=syn.NUM_SETUPS, num_cameras=syn.NUM_CAMERAS,
                 num_replications=syn.NUM_REPLICATIONS, lps_level=syn.LPS_LEVEL,
                 workers=min(DEFAULT_WORKERS, os.cpu_count() or 1), progress=False)
        logger.info("synthetic LPS-NTU set generated in %.1f s: %s", time.time() - start, out)
    return out
