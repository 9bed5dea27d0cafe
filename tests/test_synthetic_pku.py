"""Synthetic P3AR-PKU: the attribute labels of the names are the factors drawn and rendered,
fixed per person, determinism, the XSet split, the cache and tool, and a tiny end-to-end run."""
import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

import main as launcher
from datasets.names import split_names
from datasets.pku import PKU_ATTRIBUTES, parse_pku_name
from datasets.synthetic import ensure_synthetic, generate_pku
from datasets.synthetic_pku import (GENDER_BUILD, GLASSES_COLOUR, HAIRSTYLES, LOWER_PALETTE,
                                    UPPER_PALETTE, person_attributes, person_traits, pku_clip_keys,
                                    pku_layers, render_pku_clip)
from utils.config import load_config
from utils.errors import UserError
from utils.paths import synthetic_cache_dir

TINY = dict(seed=5, size=16, num_frames=4, num_actions=2, num_people=3, num_setups=2, num_cameras=3,
            lps_level=2, workers=1, progress=False)
CLIPS = 2 * 3 * 3 * 2  # setups x cameras x people x actions
PIXELS = 128  # frame side of the pixel checks (the head is then about 23 pixels wide)
FULL = 12  # people of the pixel checks: every value of every attribute occurs (lower wear has 12)
DARKEST_SCENE_LEVEL = 16  # every colour but the eye band has a channel above this (0..255)
MAX_JPEG_ERROR = 3.0  # mean absolute gray difference, levels, of a written raw frame and the rendering
# the pixels an attribute changes: at least this share of them have its colour (the others are
# soft edges, blends of many colours)
MIN_SHARE = 0.3
ROUNDING = 1  # levels: the scene's colours are exact up to the rounding to 0..255


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate_pku(tmp_path_factory.mktemp("synth_pku") / "set", **TINY)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _rgb255(colour) -> np.ndarray:
    return (np.asarray(colour, dtype=np.float32) * 255).round().astype(int)


def _first_frame(key, **changes) -> np.ndarray:
    """Frame 0 [H, W, 3] (int, unlit: the scene's own colours) of ``key`` with ``changes``."""
    key = dataclasses.replace(key, **changes)
    return render_pku_clip(key, seed=0, size=PIXELS, num_frames=2, lit=False)[0].astype(int)


def _changed_pixels(key, attribute: str, other: int) -> np.ndarray:
    """Colours [N, 3] of ``key``'s rendering where setting ``attribute`` to ``other`` changes it
    (by more than the rounding: a colour at a half level may round either way)."""
    frame, changed_frame = _first_frame(key), _first_frame(key, **{attribute: other})
    return frame[np.abs(frame - changed_frame).max(-1) > ROUNDING]


def _share(pixels: np.ndarray, colour) -> float:
    """Fraction of ``pixels`` [N, 3] within the rounding of ``colour`` (0..1 RGB)."""
    return float((np.abs(pixels - _rgb255(colour)).max(-1) <= ROUNDING).mean())


@pytest.fixture(scope="module")
def people() -> list:
    """One clip per person of a 12-person set (setup 1, camera 1, action 1)."""
    return [k for k in pku_clip_keys(seed=0, num_actions=1, num_people=FULL) if k.setup == 1 and k.camera == 1]


def test_names_carry_the_drawn_attributes_fixed_per_person(tiny):
    meta = json.loads((tiny / "meta.json").read_text())
    drawn = person_attributes(TINY["seed"], TINY["num_people"])
    assert meta["dataset"] == "pku" and meta["generator_version"] == 1 and len(meta["names"]) == CLIPS
    assert meta["people"] == {str(p): a for p, a in drawn.items()}
    assert meta["names"] == sorted(meta["names"])
    seen: dict[int, set] = {}
    for name in meta["names"]:
        parsed = parse_pku_name(name)
        assert {a: getattr(parsed, a) for a in PKU_ATTRIBUTES} == drawn[parsed.person], name
        seen.setdefault(parsed.person, set()).add((parsed.setup, parsed.camera))
    # every person in both setups and all three cameras, with the same attributes in each
    assert seen == {p: {(s, c) for s in (1, 2) for c in (1, 2, 3)} for p in range(1, 4)}
    for copy in ("raw", "lps"):
        assert sorted(p.name for p in (tiny / copy / "frames").iterdir()) == meta["names"]
        assert len(list((tiny / copy / "videos").glob("*.mp4"))) == CLIPS


def test_attributes_cover_every_value_evenly_and_differ_between_people():
    for num_people in (5, FULL, 30):
        drawn = person_attributes(0, num_people)
        rows = [tuple(a.values()) for a in drawn.values()]
        assert len(set(rows)) == num_people  # no two people share all five
        for name, (_, count) in PKU_ATTRIBUTES.items():
            values = Counter(a[name] for a in drawn.values())
            assert len(values) == min(count, num_people) and set(values) <= set(range(1, count + 1))
            assert max(values.values()) - min(values.values()) <= 1, (name, values)  # dealt evenly
    assert person_attributes(0, FULL) == person_attributes(0, FULL) != person_attributes(1, FULL)
    for name, (_, count) in PKU_ATTRIBUTES.items():  # twelve people show every value
        assert {a[name] for a in person_attributes(0, FULL).values()} == set(range(1, count + 1))


def test_palettes_builds_and_hairstyles_match_the_attribute_counts():
    counts = {name: count for name, (_, count) in PKU_ATTRIBUTES.items()}
    assert (len(GENDER_BUILD), len(HAIRSTYLES), len(UPPER_PALETTE), len(LOWER_PALETTE)) == (
        counts["gender"], counts["hairstyle"], counts["upper"], counts["lower"])
    for palette in (UPPER_PALETTE, LOWER_PALETTE):
        rgb = np.array(palette)
        gaps = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(len(rgb))
        assert gaps.min() > 0.2  # every entry is told apart from every other one


def test_torso_and_legs_wear_the_palette_entries_of_upper_and_lower(people):
    for key in people:
        for attribute, palette in (("upper", UPPER_PALETTE), ("lower", LOWER_PALETTE)):
            value = getattr(key, attribute)
            pixels = _changed_pixels(key, attribute, value % len(palette) + 1)
            shares = [_share(pixels, colour) for colour in palette]
            assert shares[value - 1] > MIN_SHARE and np.argmax(shares) == value - 1, (key.name, attribute)


def test_eye_band_is_present_iff_glasses(people):
    assert {key.glasses for key in people} == {1, 2}
    for key in people:
        frame = _first_frame(key)
        darkest = frame.max(-1) <= DARKEST_SCENE_LEVEL  # nothing but the band is this dark
        assert darkest.any() == (key.glasses == 2), key.name
        if key.glasses == 2:
            assert _share(frame[darkest], GLASSES_COLOUR) > MIN_SHARE
            rows = np.nonzero(darkest.any(1))[0]
            torso_rows = np.nonzero((np.abs(frame - _rgb255(UPPER_PALETTE[key.upper - 1])).max(-1) <= ROUNDING).any(1))[0]
            assert rows.max() < np.median(torso_rows)  # on the face, above the body


def test_hairstyle_changes_the_hair_around_the_head(people):
    for key in people:
        hair = person_traits(0, key.person)["hair"]
        areas = [0]
        for style in range(2, len(HAIRSTYLES) + 1):  # against the shaved head (style 1)
            pixels = _changed_pixels(dataclasses.replace(key, hairstyle=style), "hairstyle", 1)
            assert _share(pixels, hair) > MIN_SHARE, (key.name, style)
            areas.append(len(pixels))
        shaved, short, long_, bun, volume = areas
        assert shaved == 0 < short < bun < min(long_, volume), (key.name, areas)


def test_gender_sets_the_build(people):
    for key in people:
        upper = _rgb255(UPPER_PALETTE[key.upper - 1])
        torso = [int((np.abs(_first_frame(key, gender=g) - upper).max(-1) <= ROUNDING).sum()) for g in (1, 2)]
        broad_w, broad_h = GENDER_BUILD[0]
        slim_w, slim_h = GENDER_BUILD[1]
        ratio = broad_w * broad_h / (slim_w * slim_h)  # the torso areas' ratio
        assert torso[0] > torso[1] * (1 + (ratio - 1) / 2), (key.name, torso)


def test_layers_follow_the_attributes_not_setup_or_camera(people):
    key = people[0]
    parts = {k: [layer.part for layer in pku_layers(dataclasses.replace(key, setup=s, camera=c), seed=0,
                                                     size=PIXELS, num_frames=2)[2]]
             for k, (s, c) in enumerate([(1, 1), (2, 3)])}
    assert parts[0] == parts[1] and parts[0].count("glasses") == (key.glasses == 2)


def test_written_raw_frames_are_the_rendering(tiny):
    name = json.loads((tiny / "meta.json").read_text())["names"][7]
    key = parse_pku_name(name)
    rendered = render_pku_clip(key, seed=TINY["seed"], size=TINY["size"], num_frames=TINY["num_frames"])
    written = cv2.imread(str(tiny / "raw" / "frames" / name / "00000.jpg"), cv2.IMREAD_GRAYSCALE)
    expected = cv2.cvtColor(rendered[0], cv2.COLOR_RGB2GRAY)
    assert np.abs(written.astype(float) - expected).mean() < MAX_JPEG_ERROR


def test_same_seed_same_bytes(tiny, tmp_path):
    assert _hashes(generate_pku(tmp_path / "again", **TINY)) == _hashes(tiny)
    assert _hashes(generate_pku(tmp_path / "other", **{**TINY, "seed": 6})) != _hashes(tiny)


def test_xset_split_sizes(tiny):
    names = json.loads((tiny / "meta.json").read_text())["names"]
    train, val = split_names(names, "pku", "xset")
    per_setup = 3 * 3 * 2  # cameras x people x actions
    assert (len(train), len(val)) == (per_setup, per_setup)
    assert {parse_pku_name(n).setup for n in train} == {1} and {parse_pku_name(n).setup for n in val} == {2}
    assert {parse_pku_name(n).person for n in train} == {parse_pku_name(n).person for n in val} == set(range(1, 4))


def _pku_opts(cache: Path, *more: str) -> list[str]:
    return ["DATA.DATASET", "pku", "DATA.SYNTHETIC.ENABLED", "True", "DATA.SYNTHETIC.CACHE", str(cache),
            "DATA.SYNTHETIC.SIZE", "16", "DATA.SYNTHETIC.NUM_FRAMES", "8", "DATA.SYNTHETIC.NUM_ACTIONS", "2",
            "DATA.SYNTHETIC.NUM_PERFORMERS", "2", "DATA.SYNTHETIC.NUM_SETUPS", "2",
            "DATA.SYNTHETIC.NUM_CAMERAS", "3", "DATA.SYNTHETIC.NUM_REPLICATIONS", "1", *more]


def test_ensure_synthetic_generates_pku_and_refuses_what_names_cannot_say(tmp_path):
    cfg = load_config(opts=_pku_opts(tmp_path))
    out = ensure_synthetic(cfg)
    assert out == synthetic_cache_dir(cfg) and out.name.startswith("synth_pku_") and "_R" not in out.name
    assert len(json.loads((out / "meta.json").read_text())["names"]) == 2 * 3 * 2 * 2
    for key, value, message in (("DATA.SYNTHETIC.NUM_REPLICATIONS", "2", "no replication field"),
                                ("DATA.SYNTHETIC.NUM_SETUPS", "3", "setups"),
                                ("DATA.SYNTHETIC.NUM_CAMERAS", "4", "cameras")):
        with pytest.raises(UserError, match=message):
            ensure_synthetic(load_config(opts=_pku_opts(tmp_path, key, value)))


def test_synth_pku_tool(tmp_path, capsys):
    from tools import synth_pku

    args = ["--out", str(tmp_path / "s"), "--seed", "1", "--size", "16", "--frames", "4", "--actions", "2",
            "--people", "2", "--setups", "2", "--cameras", "1", "--workers", "1", "--device", "coded_aperture"]
    assert synth_pku.main(args) == 0
    assert "wrote 8 clips (raw and coded_aperture level 2)" in capsys.readouterr().out
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["device"] == "coded_aperture"
    assert synth_pku.main(args) == 2  # the folder exists now: one-line error
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "\n" not in err


def test_tiny_end_to_end_run_reports_every_head_and_camera(tmp_path):
    heads = ["identity", "gender", "hairstyle", "glasses", "upper", "lower"]
    out = tmp_path / "run"
    opts = _pku_opts(tmp_path / "cache",
                     "DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "16", "DATA.FD_STRIDE", "2", "DATA.NUM_WORKERS", "0",
                     "DATA.NUM_CLASSES", "2", "DATA.LABEL_LIST", "labels/pku_label_name.txt",
                     "MODEL.PRIVACY_HEADS", str(heads), "MODEL.PRIVACY_CLASSES", "[2, 2, 5, 2, 9, 12]",
                     "TRAIN.PRIVACY_WEIGHTS", "[0.2, 0.05, 0.05, 0.05, 0.05, 0.05]",
                     "MODEL.CUSTOM.LAYERS", "1", "MODEL.CUSTOM.TEXT_LAYERS", "1", "MODEL.CUSTOM.PATCH_SIZE", "8",
                     "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "8", "TEST.NUM_CLIP", "1", "TRAIN.EPOCHS", "1",
                     "TRAIN.WARMUP_EPOCHS", "0")
    assert launcher.main(["--output", str(out), "--opts", *opts]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["heads"]) == heads and metrics["num_videos"] == 3 * 2 * 2  # setup 2 validates
    assert all(head["videos"] == 12 for head in metrics["heads"].values())  # everyone is in both setups
    assert sorted(metrics["per_camera"]) == ["1", "2", "3"]
    assert all(cam["videos"] == 4 and list(cam["heads"]) == heads for cam in metrics["per_camera"].values())
    assert (out / "per_class_camera_acc.csv").is_file() and (out / "per_class_camera_acc.png").is_file()
