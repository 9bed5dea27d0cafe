"""The drawing every synthetic scene shares: a blob person (torso, head and four limbs as soft
ellipses) acting one of :data:`MOTIONS` in front of a setup's background and light, seen by a
camera.

The scene is the unit square, y pointing down. A clip is a list of :class:`Layer` s (a soft mask
and a colour each) painted in order over the setup's background and multiplied by its light
(:func:`composite`). :mod:`datasets.synthetic_ntu` and :mod:`datasets.synthetic_pku` choose the
people's appearance; the motion, setup and camera models, and every constant below, are shared
and frozen with the generators' versions (``GENERATOR_VERSION`` of each scene module).
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

EDGE_SHARPNESS = 1.5  # soft edge of a shape, in pixels (anti-aliasing)

MOTIONS = ("bob", "sway", "circle", "wave_right", "wave_left", "jumping_jack", "jump", "tilt",
           "approach", "walk", "squat", "punch")

# body geometry, in scene units
BODY_CENTER = (0.5, 0.55)  # torso centre at rest
TORSO_HALF_WIDTH = 0.11
TORSO_HALF_HEIGHT = 0.17
HEAD_RADIUS = 0.075
LIMB_LENGTH = 0.2
LIMB_HALF_THICKNESS = 0.035
ARM_REST_ANGLE = 0.35  # radians from hanging straight down
LEG_REST_ANGLE = 0.2
SHOULDER_SPREAD = 0.8  # limbs attach this fraction of the torso half-width off the midline

# motion amplitudes (scene units, radians or scale)
SHIFT_AMPLITUDE = 0.14
ARM_SWING = 1.6  # jumping-jack arm opening, radians
WAVE_CENTER = 3 * math.pi / 4  # a waving arm swings between horizontal and overhead
WAVE_AMPLITUDE = math.pi / 4
TILT_AMPLITUDE = 0.45
APPROACH_AMPLITUDE = 0.3
SQUAT_DEPTH = 0.25
WALK_LEG_SWING = 0.6

# per-performance jitter
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

# random streams shared by the scenes: the first entry of a seed sequence (the scene modules own the others)
STREAM_SETUP = 2  # background and light of a setup
STREAM_CAMERA = 3  # zoom and offset of a camera


def rng(seed: int, *parts: int) -> np.random.Generator:
    """A generator seeded from ``(seed, *parts)`` alone (never the global RNG)."""
    return np.random.default_rng([seed, *parts])


def hue_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    """An HSV colour as float32 RGB [3] in 0..1 (the hue wraps around)."""
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32)


def channels_first(rgb: np.ndarray) -> np.ndarray:
    """An RGB colour [3] as [3, 1, 1, 1], to broadcast against [3, T, H, W]."""
    return np.asarray(rgb, dtype=np.float32).reshape(3, 1, 1, 1)


def ellipse(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray, half_w: float,
            half_h: np.ndarray | float, angle: np.ndarray | float, pixel: float) -> np.ndarray:
    """Soft (anti-aliased) mask of a rotated ellipse; broadcasts frames [T, 1, 1] over the grid."""
    cos, sin = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    u = (dx * cos + dy * sin) / half_w
    v = (-dx * sin + dy * cos) / half_h
    radius = np.sqrt(u * u + v * v)
    return np.clip((1 - radius) * np.minimum(half_w, half_h) / (EDGE_SHARPNESS * pixel) + 0.5, 0, 1)


def motion(action: int, t: np.ndarray, generator: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-frame pose of ``action`` (1-based) at normalised times ``t`` in [0, 1), shapes [T].

    Beyond twelve actions the patterns repeat at a higher temporal frequency
    (``1 + (action - 1) // 12`` cycles per clip). Draws speed and phase from ``generator``.
    """
    pattern = MOTIONS[(action - 1) % len(MOTIONS)]
    cycles = 1 + (action - 1) // len(MOTIONS)
    speed = 1 + generator.uniform(-SPEED_JITTER, SPEED_JITTER)
    phase = 2 * math.pi * cycles * speed * t + generator.uniform(0, PHASE_JITTER)
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


def frame_pose(action: int, num_frames: int, generator: np.random.Generator) -> dict[str, np.ndarray]:
    """:func:`motion` at the clip's frame times, as float32 arrays [T, 1, 1] (against a grid [1, H, W])."""
    t = np.arange(num_frames, dtype=np.float64) / num_frames
    return {k: val.astype(np.float32)[:, None, None] for k, val in motion(action, t, generator).items()}


def background(seed: int, setup: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Background image [H, W, 3] and light multiplier [H, W, 3] of a setup in scene coordinates."""
    draw = rng(seed, STREAM_SETUP, setup)
    top = hue_rgb(draw.uniform(), BACKGROUND_SATURATION, draw.uniform(*BACKGROUND_LIGHTNESS))
    bottom = hue_rgb(draw.uniform(), BACKGROUND_SATURATION, draw.uniform(*BACKGROUND_LIGHTNESS))
    ramp = np.clip(y, 0, 1)[..., None]
    image = top * (1 - ramp) + bottom * ramp
    for _ in range(FURNITURE_BLOCKS):
        x0, y0 = draw.uniform(*FURNITURE_CORNER, size=2)
        w, h = draw.uniform(*FURNITURE_SIDE, size=2)
        inside = ((x >= x0) & (x <= x0 + w) & (y >= y0) & (y <= y0 + h))[..., None]
        colour = hue_rgb(draw.uniform(), FURNITURE_SATURATION, draw.uniform(*FURNITURE_VALUE))
        image = np.where(inside, colour, image)
    gain = draw.uniform(*LIGHT_GAIN_RANGE)
    cast = 1 + draw.uniform(-LIGHT_CAST, LIGHT_CAST, size=3).astype(np.float32)
    side = draw.choice([-1.0, 1.0])
    falloff = 1 - LIGHT_FALLOFF * (0.5 + side * (np.clip(x, 0, 1) - 0.5))
    return image.astype(np.float32), (gain * cast * falloff[..., None]).astype(np.float32)


def camera_grid(seed: int, camera: int, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Scene coordinates (x, y) [H, W] of a camera's pixel centres and one pixel in scene units.

    Even cameras are mirrored; each camera has its own zoom and horizontal offset.
    """
    draw = rng(seed, STREAM_CAMERA, camera)
    zoom = draw.uniform(*CAMERA_ZOOM_RANGE)
    offset = draw.uniform(-CAMERA_OFFSET, CAMERA_OFFSET)
    mirror = -1.0 if camera % 2 == 0 else 1.0
    pixel_centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    u, v = np.meshgrid(pixel_centres, pixel_centres)  # [H, W] image coordinates
    x = (mirror * (u - 0.5 - offset) / zoom + 0.5).astype(np.float32)
    y = ((v - 0.5) / zoom + 0.5).astype(np.float32)
    return x, y, 1.0 / (size * zoom)


@dataclass(frozen=True)
class Layer:
    """One shape painted over the scene.

    Args:
        part: what it shows (``torso``, ``arm``, ``leg``, ``head``, ...).
        mask: soft coverage 0..1 [T, H, W].
        colour: RGB [3, 1, 1, 1], or per pixel [3, T, H, W] (patterns).
    """

    part: str
    mask: np.ndarray
    colour: np.ndarray


@dataclass(frozen=True)
class Body:
    """Per-frame geometry of the blob person, arrays [T, 1, 1] that broadcast over a grid [1, H, W].

    Args:
        pose: :func:`frame_pose` of the clip.
        cx: torso centre x.
        cy: torso centre y.
        half_w: torso half-width.
        half_h: torso half-height.
    """

    pose: dict[str, np.ndarray]
    cx: np.ndarray
    cy: np.ndarray
    half_w: np.ndarray
    half_h: np.ndarray

    @classmethod
    def place(cls, pose: dict[str, np.ndarray], *, width: float, height: float, jitter_x: float,
              jitter_y: float) -> "Body":
        """The body of a person of relative ``width`` and ``height`` in ``pose``, shifted by the jitter."""
        scale = pose["scale"]
        half_w = TORSO_HALF_WIDTH * width * scale
        half_h = TORSO_HALF_HEIGHT * height * scale * (1 - pose["squat"])
        cx = BODY_CENTER[0] + jitter_x + pose["dx"]
        cy = BODY_CENTER[1] + jitter_y + pose["dy"] + TORSO_HALF_HEIGHT * pose["squat"]
        return cls(pose, cx, cy, half_w, half_h)

    @property
    def tilt(self) -> np.ndarray:
        """Lean of the torso from upright, radians [T, 1, 1]."""
        return self.pose["tilt"]

    @property
    def up(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vector from hips to neck."""
        return np.sin(self.tilt), -np.cos(self.tilt)

    @property
    def across(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vector to the person's left."""
        return np.cos(self.tilt), np.sin(self.tilt)

    def limbs(self, x: np.ndarray, y: np.ndarray, pixel: float) -> list[tuple[str, np.ndarray]]:
        """Masks of the left arm, left leg, right arm, right leg, as (``arm`` | ``leg``, mask)."""
        (up_x, up_y), (across_x, across_y) = self.up, self.across
        scale = self.pose["scale"]
        limb = LIMB_LENGTH * scale
        thick = LIMB_HALF_THICKNESS * scale
        masks = []
        for side, arm, leg in ((1, "arm_l", "leg_l"), (-1, "arm_r", "leg_r")):
            for joint, angle, part in ((1, arm, "arm"), (-1, leg, "leg")):
                jx = self.cx + joint * up_x * self.half_h + side * across_x * self.half_w * SHOULDER_SPREAD
                jy = self.cy + joint * up_y * self.half_h + side * across_y * self.half_w * SHOULDER_SPREAD
                direction = self.tilt + side * self.pose[angle]  # angle from hanging down, outwards
                ex, ey = jx + np.sin(direction) * limb / 2, jy + np.cos(direction) * limb / 2
                masks.append((part, ellipse(x, y, ex, ey, thick, limb / 2, -direction, pixel)))
        return masks

    def torso(self, x: np.ndarray, y: np.ndarray, pixel: float) -> np.ndarray:
        """Mask of the torso."""
        return ellipse(x, y, self.cx, self.cy, self.half_w, self.half_h, self.tilt, pixel)

    def along(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Position along the torso: -1 (hips) .. 1 (neck)."""
        up_x, up_y = self.up
        return ((x - self.cx) * up_x + (y - self.cy) * up_y) / self.half_h

    def head_radius(self, relative: float) -> np.ndarray:
        """Radius of a head ``relative`` times :data:`HEAD_RADIUS` (scaled by the pose)."""
        return HEAD_RADIUS * self.pose["scale"] * relative

    def head_centre(self, radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre of a head of ``radius`` resting on the torso."""
        up_x, up_y = self.up
        return self.cx + up_x * (self.half_h + radius), self.cy + up_y * (self.half_h + radius)


def composite(background_image: np.ndarray, light: np.ndarray, layers: list[Layer], num_frames: int,
              lit: bool = True) -> np.ndarray:
    """Paints ``layers`` in order over the background and applies the light.

    Args:
        background_image: the setup's background [H, W, 3].
        light: the setup's light multiplier [H, W, 3].
        layers: shapes, back to front.
        num_frames: frames T.
        lit: apply the light; False gives the scene's own colours (the tests compare them with
            the colours drawn).

    Returns:
        uint8 RGB frames [T, H, W, 3].
    """
    size = background_image.shape[0]
    # composite channel-first (numpy broadcasts slowly over a trailing axis of 3)
    image = np.broadcast_to(background_image.transpose(2, 0, 1)[:, None], (3, num_frames, size, size))
    for layer in layers:
        image = image + layer.mask[None] * (layer.colour - image)  # [3, T, H, W]
    if lit:
        image = image * light.transpose(2, 0, 1)[:, None]
    image = image.transpose(1, 2, 3, 0)  # [T, H, W, 3]
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
