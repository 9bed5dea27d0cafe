"""The synthetic P3AR-PKU scene: PKU-named clips whose five attributes are visible on the person.

Every clip ``S{setup}P{person}R{camera}U{gender}V{hairstyle}W{glasses}X{upper}Y{lower}A{action}``
(:mod:`datasets.pku`, three digits each) renders the blob person of
:mod:`datasets.synthetic_scene`, with the factors separated on purpose:

* **action** (A) changes ONLY the motion, as on LPS-NTU (:data:`~datasets.synthetic_scene.MOTIONS`,
  repeating at a higher frequency beyond twelve actions);
* **person** (P) changes ONLY the appearance. Each person's five attributes are drawn once, from
  the seed alone, jointly over the N people of the set: each attribute's values are dealt in turn
  (``(0..N-1) mod count + 1``) and shuffled, so every value appears once N reaches its count, and the
  deal is redrawn (at most :data:`MAX_REDRAWS` times) until no two people share all five. They are
  rendered as visible factors:

  - gender U -> body build (:data:`GENDER_BUILD`: U1 broad, U2 slim);
  - hairstyle V -> head and hair shape (:data:`HAIRSTYLES`: shaved, short cap, long to the
    shoulders, bun on top, voluminous), in a dark hair colour;
  - glasses W -> a dark eye band across the face (W1 none, W2 band);
  - upper wear X -> torso and sleeve colour from the 9 entries of :data:`UPPER_PALETTE`;
  - lower wear Y -> leg colour from the 12 entries of :data:`LOWER_PALETTE`;

  besides small individual traits drawn per person (+-6 % width, height and head size, skin tone,
  hair shade), so identity shows by the attribute combination and the traits. The attributes do
  not depend on setup or camera (as in the real data);
* **setup** (S, 1-2; XSet: setup 1 trains, setup 2 validates) changes the background and lighting,
  and **camera** (R, 1-3) the viewpoint, with the models of :mod:`datasets.synthetic_scene`;
* each performance (setup, person, action) draws its phase, speed and position once: the three
  cameras record the same performance, as in the real data. P3AR-PKU names have no replication
  field, so there is one performance per (setup, person, action).

Fixed parameters (frozen with ``GENERATOR_VERSION = 1``, before any method was evaluated on the
set; they must not be tuned later to favour any method): the scene of
:mod:`datasets.synthetic_scene` (motions, setups, cameras, body geometry) with heads
:data:`HEAD_SIZE` = 1.2 times the LPS-NTU blob's; the builds, hair shapes (in head radii), eye
band, palettes and trait ranges below; the writing of :mod:`datasets.synthetic` (JPEG quality 95,
``mp4v`` at 30 fps, the film of :class:`datasets.lps.LPSFilm` with its defaults, noise seeded per
clip). The demo set is ``configs/PKU/demo.yaml``'s ``DATA.SYNTHETIC`` (seed 0, 32 px, 24 frames,
10 actions, 12 people, 2 setups, 3 cameras = 720 clips, LPS level 2; chosen with the rendering,
before any training run, and unchanged since).
"""
from __future__ import annotations

import numpy as np

from datasets.pku import PKU_ATTRIBUTES, PKU_NUM_CAMERAS, PkuName
from datasets.synthetic_scene import (POSITION_JITTER, Body, Layer, background, camera_grid,
                                      channels_first, composite, ellipse, frame_pose, hue_rgb, rng)
from utils.errors import UserError

GENERATOR_VERSION = 1  # bump when the rendering changes (recorded in meta.json)
NUM_SETUPS = 2  # P3AR-PKU records two setups
NUM_CAMERAS = PKU_NUM_CAMERAS  # and three cameras
MAX_REDRAWS = 100  # deals of the attributes tried for distinct combinations

# gender U -> (relative torso width, relative height); U1 broad, U2 slim
GENDER_BUILD = ((1.2, 1.0), (0.85, 0.95))
HEAD_SIZE = 1.2  # head radius relative to datasets.synthetic_scene.HEAD_RADIUS
# hairstyle V -> (shapes behind the body, shapes over the head), each shape an ellipse
# (offset across, offset down, half-width, half-height) in head radii in the head's frame
_CAP = (0.0, -0.55, 1.1, 0.55)  # hair over the top half of the head
HAIRSTYLES = {
    "shaved": ((), ()),
    "short": ((), (_CAP,)),
    "long": (((0.0, 0.9, 1.35, 1.6),), (_CAP,)),  # falls behind the neck to the shoulders
    "bun": ((), (_CAP, (0.0, -1.3, 0.45, 0.45))),  # a knot on top
    "volume": (((0.0, -0.3, 1.6, 1.35),), (_CAP,)),  # wide and high around the head
}
EYE_BAND = (0.0, 0.2, 0.9, 0.2)  # glasses W2: (across, down, half-width, half-height) in head radii
GLASSES_COLOUR = (0.04, 0.04, 0.06)
# upper wear X -> torso and sleeves (RGB 0..1): red, orange, yellow, green, cyan, blue, purple,
# white, black
UPPER_PALETTE = ((0.85, 0.15, 0.15), (0.95, 0.55, 0.10), (0.95, 0.90, 0.20), (0.20, 0.70, 0.25),
                 (0.15, 0.75, 0.80), (0.20, 0.30, 0.85), (0.60, 0.25, 0.75), (0.95, 0.95, 0.95),
                 (0.15, 0.15, 0.15))
# lower wear Y -> legs: navy, black, grey, khaki, brown, off-white, denim, olive, maroon, pink,
# dark green, teal
LOWER_PALETTE = ((0.10, 0.15, 0.40), (0.08, 0.08, 0.08), (0.50, 0.50, 0.50), (0.76, 0.69, 0.50),
                 (0.45, 0.28, 0.15), (0.92, 0.92, 0.88), (0.30, 0.45, 0.70), (0.45, 0.50, 0.10),
                 (0.55, 0.05, 0.30), (0.90, 0.55, 0.65), (0.10, 0.35, 0.20), (0.10, 0.55, 0.55))
# individual traits
TRAIT_RANGE = 0.06  # width, height and head size vary by +-6 % between people
SKIN_HUE, SKIN_SATURATION, SKIN_VALUE = (0.05, 0.13), (0.3, 0.7), 0.95
HAIR_HUE, HAIR_SATURATION, HAIR_VALUE = (0.02, 0.12), (0.3, 0.7), (0.12, 0.4)

# random streams (first entry of the seed sequence; 2 and 3 are the setup's and camera's)
STREAM_ATTRIBUTES = 10  # the deal of the attributes over the people
STREAM_TRAITS = 11  # individual traits of a person
STREAM_PERFORMANCE = 12  # phase, speed and position of one (setup, person, action)
STREAM_NOISE = 13  # the film's noise of one clip


def person_attributes(seed: int, num_people: int) -> dict[int, dict[str, int]]:
    """The five 1-based attributes of every person, drawn jointly (see the module docstring).

    Args:
        seed: dataset seed.
        num_people: people N (P = 1..N).

    Returns:
        person -> {attribute name of :data:`datasets.pku.PKU_ATTRIBUTES`: value}.
    """
    draw = rng(seed, STREAM_ATTRIBUTES)
    for _ in range(MAX_REDRAWS):
        deal = {name: draw.permutation(np.arange(num_people) % count) + 1
                for name, (_, count) in PKU_ATTRIBUTES.items()}
        rows = [tuple(int(values[i]) for values in deal.values()) for i in range(num_people)]
        if len(set(rows)) == len(rows):
            break
    return {person: dict(zip(PKU_ATTRIBUTES, row)) for person, row in enumerate(rows, start=1)}


def pku_clip_keys(*, seed: int, num_actions: int, num_people: int, num_setups: int = NUM_SETUPS,
                  num_cameras: int = NUM_CAMERAS) -> list[PkuName]:
    """All clips of a synthetic P3AR-PKU set, in name order.

    Args:
        seed: dataset seed (draws the attributes).
        num_actions: actions A = 1..num_actions.
        num_people: people P.
        num_setups: setups S (at most 2).
        num_cameras: cameras R (at most 3).
    """
    people = person_attributes(seed, num_people)
    return [PkuName(setup=s, person=p, camera=c, action=a, **people[p])
            for s in range(1, num_setups + 1) for p in range(1, num_people + 1)
            for c in range(1, num_cameras + 1) for a in range(1, num_actions + 1)]


def person_traits(seed: int, person: int) -> dict[str, np.ndarray | float]:
    """A person's individual traits: relative width, height and head size, skin and hair RGB [3]."""
    draw = rng(seed, STREAM_TRAITS, person)
    return {"width": 1 + TRAIT_RANGE * draw.uniform(-1, 1),
            "height": 1 + TRAIT_RANGE * draw.uniform(-1, 1),
            "head": 1 + TRAIT_RANGE * draw.uniform(-1, 1),
            "skin": hue_rgb(draw.uniform(*SKIN_HUE), draw.uniform(*SKIN_SATURATION), SKIN_VALUE),
            "hair": hue_rgb(draw.uniform(*HAIR_HUE), draw.uniform(*HAIR_SATURATION), draw.uniform(*HAIR_VALUE))}


def lps_noise_seed(key: PkuName, seed: int) -> int:
    """The seed of the film's noise for the degraded copy of one clip."""
    return int(rng(seed, STREAM_NOISE, key.setup, key.person, key.camera, key.action).integers(2 ** 62))


def _head_shapes(x: np.ndarray, y: np.ndarray, body: Body, centre: tuple[np.ndarray, np.ndarray],
                 radius: np.ndarray, shapes: tuple, pixel: float) -> list[np.ndarray]:
    """Masks of ellipses given in head radii in the head's frame (turning with the torso)."""
    (across_x, across_y), (up_x, up_y) = body.across, body.up
    masks = []
    for right, down, half_w, half_h in shapes:
        sx = centre[0] + radius * (right * across_x - down * up_x)
        sy = centre[1] + radius * (right * across_y - down * up_y)
        masks.append(ellipse(x, y, sx, sy, radius * half_w, radius * half_h, body.tilt, pixel))
    return masks


def pku_layers(key: PkuName, *, seed: int, size: int, num_frames: int
               ) -> tuple[np.ndarray, np.ndarray, list[Layer]]:
    """The scene of one clip before compositing (:func:`render_pku_clip` paints it).

    Args:
        key: the clip's name fields (its attributes are the drawn ones).
        seed: dataset seed.
        size: frame side in pixels.
        num_frames: frames in the clip.

    Returns:
        The setup's background [H, W, 3] and light [H, W, 3], and the layers back to front:
        ``hair`` (behind), ``arm`` / ``leg`` (left arm, left leg, right arm, right leg), ``torso``,
        ``head``, ``hair`` (over the head), ``glasses`` (W2 only).
    """
    x, y, pixel = camera_grid(seed, key.camera, size)
    backdrop, light = background(seed, key.setup, x, y)
    traits = person_traits(seed, key.person)
    build_w, build_h = GENDER_BUILD[key.gender - 1]
    performance = rng(seed, STREAM_PERFORMANCE, key.setup, key.person, key.action)
    pose = frame_pose(key.action, num_frames, performance)
    jitter_x, jitter_y = (float(j) for j in performance.uniform(-POSITION_JITTER, POSITION_JITTER, size=2))
    body = Body.place(pose, width=build_w * traits["width"], height=build_h * traits["height"],
                      jitter_x=jitter_x, jitter_y=jitter_y)

    x, y = x[None], y[None]  # [1, H, W] against poses [T, 1, 1]
    radius = body.head_radius(HEAD_SIZE * traits["head"] * build_h * traits["height"])
    centre = body.head_centre(radius)
    behind, over = list(HAIRSTYLES.values())[key.hairstyle - 1]
    hair = channels_first(traits["hair"])
    layers = [Layer("hair", mask, hair) for mask in _head_shapes(x, y, body, centre, radius, behind, pixel)]
    colours = {"arm": channels_first(UPPER_PALETTE[key.upper - 1]),
               "leg": channels_first(LOWER_PALETTE[key.lower - 1])}
    layers += [Layer(part, mask, colours[part]) for part, mask in body.limbs(x, y, pixel)]
    layers.append(Layer("torso", body.torso(x, y, pixel), colours["arm"]))
    layers.append(Layer("head", ellipse(x, y, *centre, radius, radius, 0.0, pixel), channels_first(traits["skin"])))
    layers += [Layer("hair", mask, hair) for mask in _head_shapes(x, y, body, centre, radius, over, pixel)]
    if key.glasses == 2:
        band = _head_shapes(x, y, body, centre, radius, (EYE_BAND,), pixel)[0]
        layers.append(Layer("glasses", band, channels_first(GLASSES_COLOUR)))
    return backdrop, light, layers


def render_pku_clip(key: PkuName, *, seed: int, size: int, num_frames: int, lit: bool = True) -> np.ndarray:
    """Renders the raw frames of one clip.

    Args:
        key: the clip's name fields.
        seed: dataset seed.
        size: frame side in pixels.
        num_frames: frames in the clip.
        lit: apply the setup's light (False: the scene's own colours, which the tests check).

    Returns:
        uint8 RGB frames [T, H, W, 3].
    """
    backdrop, light, layers = pku_layers(key, seed=seed, size=size, num_frames=num_frames)
    return composite(backdrop, light, layers, num_frames, lit=lit)



def check_counts(*, num_setups: int, num_cameras: int) -> None:
    """Checks the setups and cameras against P3AR-PKU's.

    Raises:
        UserError: more setups or cameras than P3AR-PKU has (or fewer than one).
    """
    if not 1 <= num_setups <= NUM_SETUPS:
        raise UserError(f"synthetic P3AR-PKU has 1 or {NUM_SETUPS} setups (setup 1 trains under xset), "
                        f"got {num_setups}; set DATA.SYNTHETIC.NUM_SETUPS")
    if not 1 <= num_cameras <= NUM_CAMERAS:
        raise UserError(f"synthetic P3AR-PKU has 1 to {NUM_CAMERAS} cameras, got {num_cameras}; set "
                        "DATA.SYNTHETIC.NUM_CAMERAS")
