"""Experiment configuration: yacs defaults, ``BASE`` inheritance, overrides and validation.

Every option the system reads is declared in :mod:`utils.defaults` with a comment at its default. Experiment files
in ``configs/`` override a subset; ``--opts KEY VALUE`` pairs override last. The only public
entry point for code is :func:`load_config`. The lists of choices come from the modules that own
them (datasets, models, trainers), which never import this module: only the launcher and the
tools read a config file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import yaml
from yacs.config import CfgNode as CN

from datasets.loader import LAYOUTS
from datasets.motion_noise import NOISE_MODES
from datasets.names import BENCHMARKS, DATASET_LABELS, DATASETS
from datasets.optics import CAMERAS
from datasets.spp import BLENDS, DEVICES
from datasets.video import VIDEO_BACKENDS
from datasets.synthetic import COPIES
from datasets.transforms import TEST_CROPS
from models import ENCODERS
from models.attention import BACKENDS
from models.clip import CLIP_SIZES, HEAD_WIDTH
from models.dino import COMBINES, DINO_ARCHS, FACETS
from models.mspnet import FREEZABLE
from models.stprivacy import stprivacy_problem
from trainers.losses import PRIVACY_MODES
from trainers.precision import PRECISION_DTYPES
from utils.defaults import CUSTOM_ARCH, _C
from utils.errors import UserError
from utils.paths import PROJECT_ROOT

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "demo.yaml"


class ConfigError(UserError):
    """A user mistake in a config file or override; the message is one line for the user."""




# keys that no longer exist, and what replaced them (a config that sets one gets this line)
_REMOVED = {
    "DATA.PLANES_ON_DEVICE": "the input encoder (MODEL.ENCODER) always computes its input on the "
                             "model's device from the uint8 frames of the items; delete the key",
    "DATA.NUM_IDENTITIES": "the privacy heads have their class counts in MODEL.PRIVACY_CLASSES (beside "
                           "MODEL.PRIVACY_HEADS [identity]); move the value there",
    "TRAIN.PRIVACY_WEIGHT": "each privacy head has its weight in TRAIN.PRIVACY_WEIGHTS (one per "
                            "MODEL.PRIVACY_HEADS entry); move the value there",
}

_OPT_LEVEL = ("", "O0", "O1", "O2")  # TRAIN.OPT_LEVEL: the original release's apex levels
_OPT_LEVEL_TO_PRECISION = {"O0": "fp32", "O1": "fp16", "O2": "fp16"}


def get_defaults() -> CN:
    """Returns a mutable copy of the defaults."""
    return _C.clone()


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass an existing YAML file to --config)")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as UTF-8 YAML") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" line {line + 1}" if line is not None else ""
        raise ConfigError(f"config file {path}{where} is not valid YAML; fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of KEY: value")
    return data


def _merge_file(cfg: CN, path: Path, seen: tuple[Path, ...] = ()) -> None:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"config file {path} includes itself through BASE")
    data = _read_yaml(path)
    for base in data.get("BASE", [""]) or [""]:
        if base:
            _merge_file(cfg, path.parent / base, seen + (path,))
    data = {k: v for k, v in data.items() if k != "BASE"}
    _check_removed(data, path)
    try:
        cfg.merge_from_other_cfg(CN(data))
    except (KeyError, ValueError, TypeError, AssertionError) as exc:
        raise ConfigError(f"config file {path}: {_one_line(exc)}") from None


def _check_removed(data: dict, path: Path, prefix: str = "") -> None:
    """Raises ConfigError for a key of :data:`_REMOVED` anywhere in the nested ``data``."""
    for key, value in data.items():
        full = f"{prefix}{key}"
        if full in _REMOVED:
            raise ConfigError(f"config file {path}: {full} was removed: {_REMOVED[full]}")
        if isinstance(value, dict):
            _check_removed(value, path, full + ".")


def _one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return " ".join(text.split())


def _merge_opts(cfg: CN, opts: Sequence[str]) -> None:
    if len(opts) % 2:
        raise ConfigError(f"--opts needs KEY VALUE pairs, got an odd count: {' '.join(opts)}")
    for key, value in zip(opts[0::2], opts[1::2]):
        _check_key(cfg, key)
        try:
            cfg.merge_from_list([key, value])
        except (KeyError, ValueError, TypeError, AssertionError) as exc:
            raise ConfigError(f"--opts {key} {value}: {_one_line(exc)}") from None


def _check_key(cfg: CN, key: str) -> None:
    if key in _REMOVED:
        raise ConfigError(f"--opts {key} was removed: {_REMOVED[key]}")
    node = cfg
    for part in key.split("."):
        if not isinstance(node, CN) or part not in node:
            raise ConfigError(f"unknown config key {key}; see utils/defaults.py for the valid keys")
        node = node[part]


def _get(cfg: CN, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _choices() -> dict[str, tuple]:
    """Every choice key and its values, each list imported from the module that owns it."""
    return {
        "DATA.DATASET": DATASETS,
        "DATA.BENCHMARK": tuple(dict.fromkeys(b for names in BENCHMARKS.values() for b in names)),
        "DATA.LAYOUT": LAYOUTS,
        "DATA.VIDEO_BACKEND": VIDEO_BACKENDS,
        "DATA.SYNTHETIC.SOURCE": COPIES,
        "DATA.SYNTHETIC.DEVICE": CAMERAS,
        "LPS.DEVICE": CAMERAS,
        "MODEL.ARCH": tuple(CLIP_SIZES) + (CUSTOM_ARCH,),
        "MODEL.ENCODER": ENCODERS,
        "MODEL.ATTN_BACKEND": BACKENDS,
        "TRAIN.PRECISION": tuple(PRECISION_DTYPES),
        "TRAIN.OPT_LEVEL": _OPT_LEVEL,
        "TRAIN.PRIVACY_LOSS": PRIVACY_MODES,
        "TEST.NUM_CROP": TEST_CROPS,
        "SPP.ARCH": DINO_ARCHS, "SPP.FACET": FACETS, "SPP.COMBINE": COMBINES, "SPP.BLEND": BLENDS,
        "SPP.NOISE": NOISE_MODES, "SPP.DEVICE": DEVICES,
    }


def _validate(cfg: CN) -> None:
    for key, choices in _choices().items():
        value = _get(cfg, key)
        if value not in choices:
            raise ConfigError(f"{key} = {value!r} is not one of {', '.join(map(repr, choices))}")
    if cfg.DATA.BENCHMARK not in BENCHMARKS[cfg.DATA.DATASET]:
        raise ConfigError(f"DATA.BENCHMARK {cfg.DATA.BENCHMARK} does not exist for DATA.DATASET "
                          f"{cfg.DATA.DATASET}; choose one of {', '.join(BENCHMARKS[cfg.DATA.DATASET])}")
    for name in cfg.MODEL.FREEZE:
        if name not in FREEZABLE:
            raise ConfigError(f"MODEL.FREEZE entry {name!r} is not one of {', '.join(FREEZABLE)}")
    _validate_heads(cfg)
    positive = ("DATA.NUM_FRAMES", "DATA.FD_STRIDE", "DATA.INPUT_SIZE", "DATA.NUM_CLASSES", "TRAIN.BATCH_SIZE", "TRAIN.ACCUMULATION_STEPS",
                "TEST.NUM_CLIP", "TEST.BATCH_SIZE", "SAVE_FREQ", "PRINT_FREQ", "EVAL_FREQ",
                "TRAIN.ADV_STEPS", "SPP.STRIDE", "SPP.INPUT_SIZE")
    for key in positive:
        if _get(cfg, key) < 1:
            raise ConfigError(f"{key} must be at least 1, got {_get(cfg, key)}")
    if cfg.SAVE_KEEP < 0:
        raise ConfigError(f"SAVE_KEEP must be 0 (keep all) or more, got {cfg.SAVE_KEEP}")
    for key in ("TRAIN.LR", "TRAIN.EPS"):
        if not _get(cfg, key) > 0:
            raise ConfigError(f"{key} must be positive, got {_get(cfg, key)}")
    for key in ("TRAIN.WEIGHT_DECAY", "TRAIN.CLIP_GRAD", "TRAIN.NEW_MODULE_LR_MULT", "TRAIN.MIN_LR_RATIO",
                "TRAIN.WARMUP_LR_RATIO", "AUG.LABEL_SMOOTH", "AUG.MIXUP", "AUG.CUTMIX"):
        if _get(cfg, key) < 0:
            raise ConfigError(f"{key} must not be negative, got {_get(cfg, key)}")
    for key in ("AUG.COLOR_JITTER", "AUG.GRAY_SCALE", "AUG.MIXUP_SWITCH_PROB", "AUG.LABEL_SMOOTH"):
        if not 0 <= _get(cfg, key) <= 1:
            raise ConfigError(f"{key} is a probability, between 0 and 1, got {_get(cfg, key)}")
    if cfg.TRAIN.EPOCHS < 0 or cfg.TRAIN.WARMUP_EPOCHS < 0:
        raise ConfigError("TRAIN.EPOCHS and TRAIN.WARMUP_EPOCHS must not be negative")
    if not 1 <= cfg.DATA.SYNTHETIC.LPS_LEVEL <= 3:
        raise ConfigError(f"DATA.SYNTHETIC.LPS_LEVEL must be 1, 2 or 3, got {cfg.DATA.SYNTHETIC.LPS_LEVEL}")
    if not 0 <= cfg.LPS.LEVEL <= 3:
        raise ConfigError(f"LPS.LEVEL must be 0 (off), 1, 2 or 3, got {cfg.LPS.LEVEL}")
    if not 0 <= cfg.SPP.THRESHOLD <= 1:
        raise ConfigError(f"SPP.THRESHOLD is a saliency, between 0 and 1, got {cfg.SPP.THRESHOLD}")
    if cfg.SPP.ENABLED and cfg.SPP.DEVICE == "cuda" and cfg.DATA.NUM_WORKERS > 0:
        raise ConfigError("SPP.DEVICE cuda runs the ViT in the main process: set DATA.NUM_WORKERS 0 (or SPP.DEVICE cpu)")
    if cfg.MODEL.ARCH == CUSTOM_ARCH:
        _validate_custom(cfg.MODEL.CUSTOM, cfg.DATA.INPUT_SIZE, HEAD_WIDTH)
    mean, std = cfg.DATA.PLANE_MEAN, cfg.DATA.PLANE_STD
    if (mean or std) and (len(mean) != 3 or len(std) != 3 or min(std) <= 0):
        raise ConfigError(f"DATA.PLANE_MEAN and DATA.PLANE_STD need 3 values each (std > 0) or both "
                          f"empty, got {list(mean)} and {list(std)}")
    if cfg.MODEL.ENCODER == "bdq" and cfg.DATA.NUM_FRAMES < 2:
        raise ConfigError("MODEL.ENCODER bdq differences consecutive sampled frames: DATA.NUM_FRAMES "
                          f"must be at least 2, got {cfg.DATA.NUM_FRAMES}")
    if cfg.MODEL.ENCODER == "stprivacy":
        st = cfg.MODEL.STPRIVACY
        problem = stprivacy_problem(num_frames=cfg.DATA.NUM_FRAMES, image_size=cfg.DATA.INPUT_SIZE, patch=st.PATCH,
                                    width=st.WIDTH, layers=st.LAYERS, prune_layers=list(st.PRUNE_LAYERS),
                                    keep_ratio=st.KEEP_RATIO, ratio_weight=st.RATIO_WEIGHT)
        if problem:
            raise ConfigError(problem)
    if cfg.DATA.CROP_ON_DEVICE and (cfg.MODEL.ENCODER != "ifns" or cfg.DATA.LAYOUT == "precomputed"):
        raise ConfigError("DATA.CROP_ON_DEVICE True needs MODEL.ENCODER ifns (gray frames) and a "
                          "DATA.LAYOUT with frames (video, frames or packed); set it False")


def _validate_heads(cfg: CN) -> None:
    """The privacy heads: labels the dataset's names carry, one class count (>= 2) and one
    non-negative weight each."""
    heads, classes, weights = cfg.MODEL.PRIVACY_HEADS, cfg.MODEL.PRIVACY_CLASSES, cfg.TRAIN.PRIVACY_WEIGHTS
    if not len(heads) == len(classes) == len(weights):
        raise ConfigError(f"MODEL.PRIVACY_HEADS {list(heads)}, MODEL.PRIVACY_CLASSES {list(classes)} and "
                          f"TRAIN.PRIVACY_WEIGHTS {list(weights)} need one entry per head")
    labels = DATASET_LABELS[cfg.DATA.DATASET]
    for name in heads:
        if name not in labels:
            raise ConfigError(f"MODEL.PRIVACY_HEADS entry {name!r} is not a label of DATA.DATASET "
                              f"{cfg.DATA.DATASET}; choose from {', '.join(labels)}")
    if len(set(heads)) < len(heads):
        raise ConfigError(f"MODEL.PRIVACY_HEADS {list(heads)} names a head twice")
    if any(c < 2 for c in classes) or any(w < 0 for w in weights):
        raise ConfigError(f"MODEL.PRIVACY_CLASSES {list(classes)} need at least 2 classes each and "
                          f"TRAIN.PRIVACY_WEIGHTS {list(weights)} must not be negative")


def _validate_custom(custom: CN, input_size: int, head_width: int) -> None:
    """The custom tower sizes: positive depths and patch, widths of whole attention heads."""
    for key in ("LAYERS", "TEXT_LAYERS", "PATCH_SIZE", "CONTEXT_LENGTH"):
        if custom[key] < 1:
            raise ConfigError(f"MODEL.CUSTOM.{key} must be at least 1, got {custom[key]}")
    for key in ("WIDTH", "EMBED_DIM", "TEXT_WIDTH"):
        if custom[key] < head_width or custom[key] % head_width:
            raise ConfigError(f"MODEL.CUSTOM.{key} must be a positive multiple of {head_width} (attention "
                              f"heads are {head_width} wide), got {custom[key]}")
    if input_size % custom.PATCH_SIZE:
        raise ConfigError(f"DATA.INPUT_SIZE {input_size} must be a multiple of MODEL.CUSTOM.PATCH_SIZE "
                          f"{custom.PATCH_SIZE}")


def load_config(path: str | os.PathLike | None = None, opts: Sequence[str] | None = None,
                freeze: bool = True) -> CN:
    """Builds the experiment config.

    Args:
        path: YAML experiment file (``BASE`` entries are merged first); ``None`` = ``configs/demo.yaml``.
        opts: flat ``[KEY, VALUE, ...]`` overrides applied last (values parsed as Python literals).
        freeze: return a frozen node.

    Returns:
        The merged, validated config.

    Raises:
        ConfigError: a missing file, unknown key, wrongly typed value or invalid choice.
    """
    cfg = get_defaults()
    _merge_file(cfg, Path(path) if path is not None else DEFAULT_CONFIG)
    _merge_opts(cfg, list(opts or []))
    if cfg.TRAIN.OPT_LEVEL:
        cfg.TRAIN.PRECISION = _OPT_LEVEL_TO_PRECISION[cfg.TRAIN.OPT_LEVEL]
    _validate(cfg)
    if freeze:
        cfg.freeze()
    return cfg
