"""The synthetic LPS-NTU scene: NTU-named clips of a blob "person" acting, factors separated.

Every clip ``S{setup:03d}C{camera:03d}P{performer:03d}R{rep:03d}A{action:03d}`` renders one scene
(:mod:`datasets.synthetic_scene`) whose factors are separated on purpose:

* **action** (A) changes ONLY the motion: one of :data:`~datasets.synthetic_scene.MOTIONS` (bob,
  sway, circle, wave right, wave left, jumping jack, jump, tilt, approach, walk, squat, punch);
  beyond twelve actions the pattern repeats at a higher temporal frequency
  (``1 + (A - 1) // 12`` cycles per clip);
* **performer** (P) changes ONLY the appearance: shirt, trousers and head colours (hues spread by
  the golden ratio), shirt stripes, body width and height - recognisable from one clean frame;
* **setup** (S) changes the background (colour gradient, static furniture blocks) and lighting
  (gain, colour cast, left-right light falloff);
* **camera** (C) changes the viewpoint: even cameras are mirrored, and each camera has its own
  zoom and horizontal offset;
* **replication** (R) adds small random variations: phase, speed, position.

Each clip gets its own random generator seeded from ``(seed, S, C, P, R, A)`` (never the global
RNG), so files do not depend on the worker schedule: the same seed gives byte-identical files.
:mod:`datasets.synthetic` writes each scene raw and through the film.

Fixed benchmark parameters (frozen with ``GENERATOR_VERSION = 1``; they must not be tuned later
to favour any method): the demo set of ``DATA.SYNTHETIC`` (seed 0, 32 px, 24 frames, 10 actions,
10 performers, 4 setups, 2 cameras, 2 replications = 1600 clips, LPS level 2); JPEG quality 95,
``mp4v`` at 30 fps; motions of amplitude 0.14 frame (shifts), 0.45 rad (tilt), +-30 % (approach),
one cycle per clip with +-15 % speed, random phase and +-0.04 frame position per clip; the film of
:class:`datasets.lps.LPSFilm` with its defaults (core 0.002, halo 0.04 of the frame side, 45 %
scattered, 12 % glare, 15 % chroma loss per layer, transmittance 0.88, 4000 photo-electrons at
white, read noise 0.003), LPS noise seeded per clip. All constants are named here and in
:mod:`datasets.synthetic_scene`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from datasets.synthetic_scene import (POSITION_JITTER, Body, Layer, background, camera_grid,
                                      channels_first, composite, ellipse, frame_pose, hue_rgb,
                                      rng)

GENERATOR_VERSION = 1  # bump when the rendering changes (recorded in meta.json)
GOLDEN_RATIO = (1 + math.sqrt(5)) / 2
PERFORMER_SIZE_RANGE = 0.25  # body width/height vary by +-25% between performers
STRIPE_CONTRAST = 0.35  # shirt stripes darken the shirt colour by this fraction
MAX_STRIPES = 3  # stripe frequencies 0 (plain) .. MAX_STRIPES across the shirt
SHIRT_SATURATION, SHIRT_VALUE = 0.85, 0.9  # shirt hue = performer / golden ratio
TROUSERS_SATURATION, TROUSERS_VALUE = 0.6, (0.45, 0.75)  # opposite hue, random darkness
SKIN_HUE, SKIN_SATURATION, SKIN_VALUE = (0.05, 0.13), (0.3, 0.7), 0.95

# random streams (first entry of the seed sequence; 2 and 3 are the setup's and camera's)
STREAM_CLIP = 0  # phase, speed and position of one clip
STREAM_PERFORMER = 1  # appearance of a performer
STREAM_NOISE = 4  # the film's noise of one clip


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


def appearance(seed: int, performer: int) -> dict[str, np.ndarray | float]:
    """Colours (RGB [3]), stripe count and relative body width and height of a performer."""
    draw = rng(seed, STREAM_PERFORMER, performer)
    hue = performer / GOLDEN_RATIO
    return {"shirt": hue_rgb(hue, SHIRT_SATURATION, SHIRT_VALUE),
            "trousers": hue_rgb(hue + 0.5, TROUSERS_SATURATION, draw.uniform(*TROUSERS_VALUE)),
            "head": hue_rgb(draw.uniform(*SKIN_HUE), draw.uniform(*SKIN_SATURATION), SKIN_VALUE),
            "stripes": float(draw.integers(0, MAX_STRIPES + 1)),
            "width": 1 + PERFORMER_SIZE_RANGE * draw.uniform(-1, 1),
            "height": 1 + PERFORMER_SIZE_RANGE * draw.uniform(-1, 1)}


def lps_noise_seed(key: ClipKey, seed: int) -> int:
    """The seed of the film's noise for the degraded copy of one clip."""
    return int(rng(seed, STREAM_NOISE, key.setup, key.camera, key.performer, key.rep,
                   key.action).integers(2 ** 62))


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
    draw = rng(seed, STREAM_CLIP, key.setup, key.camera, key.performer, key.rep, key.action)
    x, y, pixel = camera_grid(seed, key.camera, size)
    backdrop, light = background(seed, key.setup, x, y)
    look = appearance(seed, key.performer)
    pose = frame_pose(key.action, num_frames, draw)
    jitter_x, jitter_y = (float(j) for j in draw.uniform(-POSITION_JITTER, POSITION_JITTER, size=2))
    body = Body.place(pose, width=look["width"], height=look["height"], jitter_x=jitter_x,
                      jitter_y=jitter_y)

    x, y = x[None], y[None]  # [1, H, W] against poses [T, 1, 1]
    colours = {"arm": channels_first(look["shirt"]), "leg": channels_first(look["trousers"])}
    layers = [Layer(part, mask, colours[part]) for part, mask in body.limbs(x, y, pixel)]
    stripes = 1 - STRIPE_CONTRAST * (np.cos(math.pi * look["stripes"] * body.along(x, y)) > 0) * (look["stripes"] > 0)
    layers.append(Layer("torso", body.torso(x, y, pixel), channels_first(look["shirt"]) * stripes[None]))
    head_r = body.head_radius(look["height"])
    hx, hy = body.head_centre(head_r)
    layers.append(Layer("head", ellipse(x, y, hx, hy, head_r, head_r, 0.0, pixel),
                        channels_first(look["head"])))
    return composite(backdrop, light, layers, num_frames)

