"""Experiment configuration: yacs defaults, ``BASE`` inheritance, overrides and validation.

Every option the system reads is declared here with a comment at its default. Experiment files
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
from datasets.names import BENCHMARKS, DATASET_LABELS, DATASETS
from datasets.readers import VIDEO_BACKENDS
from datasets.synthetic import COPIES
from datasets.transforms import TEST_CROPS
from models import ENCODERS
from models.attention import BACKENDS
from models.clip import CLIP_SIZES, HEAD_WIDTH
from models.mspnet import FREEZABLE
from trainers.losses import PRIVACY_MODES
from trainers.precision import PRECISION_DTYPES
from utils.errors import UserError
from utils.paths import PROJECT_ROOT

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "demo.yaml"


class ConfigError(UserError):
    """A user mistake in a config file or override; the message is one line for the user."""


_C = CN()
_C.BASE = [""]  # YAML files (relative to this file) merged before this one, in order

# ----------------------------------------------------------------------------- data
_C.DATA = CN()
# dataset: ntu60 | ntu120 (NTU naming SsssCcccPpppRrrrAaaa) | pku (P3AR-PKU naming
# SsssPpppRrrrUuuuVvvvWwwwXxxxYyyyAaaa, with five appearance attributes)
_C.DATA.DATASET = "ntu120"
_C.DATA.BENCHMARK = "xset"  # split rule: xsub | xset (ntu120) ; xsub | xview (ntu60) ; xset (pku)
_C.DATA.ROOT = ""  # folder of the clips (videos or frame folders, see LAYOUT); "" = synthetic cache
_C.DATA.LAYOUT = "frames"  # storage: video | frames | precomputed | packed
_C.DATA.VIDEO_EXT = ".mp4"  # file extension of videos when LAYOUT is video
# video decoder: auto (decord, opencv where decord fails) | decord | opencv | luma. decord and
# opencv give the same frames; opencv decoded the synthetic clips 2.1x faster per worker. luma:
# opencv without the colour conversion for gray frames (the decoder's luma plane, about 2x faster
# again; gray within a few levels of the colour path's; its levels, limited or full range, are
# fitted once per folder and codec: keep one encoding per folder; see datasets/readers.py)
_C.DATA.VIDEO_BACKEND = "auto"
_C.DATA.FD_ROOT = ""  # precomputed layout: folder of fd/<sample>/<i>.jpg frame differences
_C.DATA.AVG_ROOT = ""  # precomputed layout: folder of avg/<sample>/<i>.jpg temporal averages
_C.DATA.PACKED_ROOT = ""  # packed layout: folder written by tools/pack_dataset.py
_C.DATA.TRAIN_FILE = ""  # optional split list (one sample name per line); "" = benchmark rule
_C.DATA.VAL_FILE = ""  # optional split list for validation; "" = benchmark rule
_C.DATA.LABEL_LIST = "labels/ntu120_label_name.txt"  # class names, one per line, relative to project
_C.DATA.NUM_CLASSES = 120  # action classes K (first K names of LABEL_LIST)
_C.DATA.NUM_FRAMES = 8  # sampled frames T per clip
_C.DATA.FD_STRIDE = 4  # IFNS frame-difference stride k (fd(t) = |g(t) - g(t-k)|)
_C.DATA.INPUT_SIZE = 224  # square crop fed to the model (pixels)
# per-plane (fd(t-1), fd(t), avg(t)) mean and std on the 0..1 gray scale; both empty = CLIP's
# normalisation (for CLIP weights). From-scratch models want the dataset's statistics
# (tools/plane_stats.py prints them).
_C.DATA.PLANE_MEAN = []
_C.DATA.PLANE_STD = []
# True: workers return the decoded gray frames uncropped and the device maps the luma levels,
# crops, resizes, flips and jitters them before the input encoder (bilinear; frames must shrink
# less than 2x to INPUT_SIZE: for videos or packed stores near the input size, e.g. pack_dataset
# --short-side; gray encoders only). False: workers crop (OpenCV)
_C.DATA.CROP_ON_DEVICE = False
_C.DATA.NUM_WORKERS = 4  # data-loader worker processes per rank
_C.DATA.PIN_MEMORY = True  # pin host memory for faster host-to-device copies (GPU only)
_C.DATA.SKIP_BAD = False  # True: skip and count unreadable samples; False: stop with an error
_C.DATA.SYNTHETIC = CN()
_C.DATA.SYNTHETIC.ENABLED = False  # generate the synthetic set into the cache when missing (pku: P3AR-PKU)
_C.DATA.SYNTHETIC.CACHE = ""  # cache folder; "" = $LPS_HAR_CACHE or ~/.cache/lps_har
_C.DATA.SYNTHETIC.SEED = 0  # generator seed (same seed, same bytes)
_C.DATA.SYNTHETIC.SIZE = 32  # frame side in pixels
_C.DATA.SYNTHETIC.NUM_FRAMES = 24  # frames per synthetic clip
_C.DATA.SYNTHETIC.NUM_ACTIONS = 10  # actions (motions)
_C.DATA.SYNTHETIC.NUM_PERFORMERS = 10  # identities (appearances; pku: people)
_C.DATA.SYNTHETIC.NUM_SETUPS = 4  # setups (background / lighting); even = train under xset (pku: 1-2)
_C.DATA.SYNTHETIC.NUM_CAMERAS = 2  # cameras (viewpoints; pku: 1-3)
_C.DATA.SYNTHETIC.NUM_REPLICATIONS = 2  # per (setup, camera, performer, action); pku: 1 (no R in names)
_C.DATA.SYNTHETIC.LPS_LEVEL = 2  # film layers used for the degraded copy (1..3)
_C.DATA.SYNTHETIC.SOURCE = "lps"  # which copy the model reads: lps | raw

# ----------------------------------------------------------------------------- LPS simulation
_C.LPS = CN()
_C.LPS.LEVEL = 0  # on-the-fly film simulation applied by the loader (0 = off; data is already degraded)

# ----------------------------------------------------------------------------- model
_C.MODEL = CN()
CUSTOM_ARCH = "custom"  # MODEL.ARCH of the MODEL.CUSTOM sizes
_C.MODEL.ARCH = "ViT-B/32"  # ViT-B/32 | ViT-B/16 | ViT-L/14 | ViT-L/14-336 | custom
_C.MODEL.PRETRAINED = ""  # OpenAI CLIP / open_clip / original-release file; "none" = random init
_C.MODEL.ALLOW_PICKLE = False  # opt-in: unpickle original-release checkpoints (runs code from the file)
_C.MODEL.RESUME = ""  # checkpoint to resume from: a path, "auto" (newest in OUTPUT) or ""
_C.MODEL.ENCODER = "ifns"  # input encoder: ifns (MSPNet) | rgb | downsample | bdq
_C.MODEL.DOWNSAMPLE_SIZE = 16  # side of the low-resolution input for ENCODER downsample
_C.MODEL.ATTN_BACKEND = "sdpa"  # attention kernels: sdpa | triton | math (reference)
_C.MODEL.DROP_PATH_RATE = 0.0  # stochastic depth at the last vision block (linear over depth)
_C.MODEL.TEMPORAL_LAYERS = 1  # temporal fusion transformer blocks
_C.MODEL.PROMPT_LAYERS = 2  # video-specific prompt decoder layers
_C.MODEL.PROMPT_ALPHA = 0.1  # initial per-dimension scale of the prompt added to text features
# parts kept frozen (at their pretrained or initial values): any of text (the CLIP text tower),
# visual (the CLIP vision tower, not the IFNS mix nor the CFSA message layers), logit_scale,
# temporal, prompt, heads (the privacy heads). The original release's FIX_TEXT is
# [text, logit_scale, temporal, heads] (see configs/NTU/NTU120_XSet.yaml)
_C.MODEL.FREEZE = []
# privacy heads on the normalised video feature, one Linear each: labels of the sample names
# (identity; pku also gender, hairstyle, glasses, upper, lower), with their class counts
# (NTU120: 106 performers, NTU60: 40; pku: identity 22, gender 2, hairstyle 5, glasses 2,
# upper 9, lower 12); [] = none
_C.MODEL.PRIVACY_HEADS = ["identity"]
_C.MODEL.PRIVACY_CLASSES = [106]  # classes of each MODEL.PRIVACY_HEADS entry, in its order
_C.MODEL.CUSTOM = CN()  # sizes used when ARCH is custom (demo, tests)
_C.MODEL.CUSTOM.WIDTH = 64  # vision width d
_C.MODEL.CUSTOM.LAYERS = 2  # vision transformer blocks
_C.MODEL.CUSTOM.PATCH_SIZE = 4  # patch side in pixels
_C.MODEL.CUSTOM.EMBED_DIM = 64  # joint embedding width E
_C.MODEL.CUSTOM.TEXT_WIDTH = 64  # text transformer width
_C.MODEL.CUSTOM.TEXT_LAYERS = 2  # text transformer blocks
_C.MODEL.CUSTOM.CONTEXT_LENGTH = 77  # text tokens (CLIP BPE)

# ----------------------------------------------------------------------------- training
_C.TRAIN = CN()
_C.TRAIN.EPOCHS = 30  # training epochs
_C.TRAIN.WARMUP_EPOCHS = 5  # linear warmup length (epochs, counted in optimizer steps)
_C.TRAIN.LR = 8.0e-6  # base learning rate (CLIP towers); new modules get LR * NEW_MODULE_LR_MULT
_C.TRAIN.NEW_MODULE_LR_MULT = 10.0  # LR multiplier of modules trained from scratch
_C.TRAIN.MIN_LR_RATIO = 0.01  # cosine schedule floor as a fraction of the peak LR
_C.TRAIN.WARMUP_LR_RATIO = 0.0  # warmup start as a fraction of the peak LR
_C.TRAIN.WEIGHT_DECAY = 0.001  # AdamW decoupled weight decay (not on 1-D params or embeddings)
_C.TRAIN.BETAS = [0.9, 0.98]  # AdamW betas
_C.TRAIN.EPS = 1.0e-8  # AdamW epsilon
_C.TRAIN.BATCH_SIZE = 8  # clips per micro-batch per GPU
_C.TRAIN.ACCUMULATION_STEPS = 1  # micro-batches per optimizer step
_C.TRAIN.CLIP_GRAD = 0.0  # max gradient norm (0 = no clipping)
_C.TRAIN.PRECISION = "fp32"  # fp32 | bf16 | fp16 (torch.amp autocast; fp16 adds a grad scaler)
_C.TRAIN.OPT_LEVEL = ""  # original apex level O0/O1/O2, mapped onto PRECISION when set
_C.TRAIN.USE_CHECKPOINT = False  # activation checkpointing in the vision blocks (saves memory)
_C.TRAIN.COMPILE = False  # torch.compile the model
# privacy term over every head: aux (+ sum w*CE) | adversarial (gradient reversal) | none (heads
# train as probes, the encoder gets no gradient from them)
_C.TRAIN.PRIVACY_LOSS = "aux"
_C.TRAIN.PRIVACY_WEIGHTS = [1.0]  # weight w of each MODEL.PRIVACY_HEADS entry's cross-entropy
_C.TRAIN.ADV_STEPS = 1  # adversarial: privacy-head updates per encoder update (BDQ alternation)
_C.TRAIN.AUTO_RESUME = False  # resume from the newest checkpoint in OUTPUT when one exists
_C.TRAIN.MAX_NONFINITE = 10  # non-finite losses tolerated (skipped under fp16 scaler) before stopping

# ----------------------------------------------------------------------------- augmentation
_C.AUG = CN()
_C.AUG.LABEL_SMOOTH = 0.1  # label smoothing of the action and identity targets
_C.AUG.COLOR_JITTER = 0.8  # probability of brightness/contrast jitter
_C.AUG.GRAY_SCALE = 0.2  # probability of gray-scale RGB frames (training; gray encoders: no-op)
_C.AUG.FLIP = True  # random horizontal flip in training
_C.AUG.SCALES = [1.0, 0.875, 0.75, 0.66]  # multi-scale crop side ratios
_C.AUG.MIXUP = 0.8  # mixup alpha (0 = off)
_C.AUG.CUTMIX = 1.0  # cutmix alpha (0 = off)
_C.AUG.MIXUP_SWITCH_PROB = 0.5  # probability of cutmix instead of mixup when both are on

# ----------------------------------------------------------------------------- testing
_C.TEST = CN()
_C.TEST.NUM_CLIP = 1  # temporal views per video
_C.TEST.NUM_CROP = 1  # spatial views per video: 1 (center) or 3 (along the long side)
_C.TEST.ONLY_TEST = False  # evaluate the resumed/pretrained model and exit
_C.TEST.BATCH_SIZE = 8  # videos per evaluation batch per GPU

# ----------------------------------------------------------------------------- run
_C.OUTPUT = "output/demo"  # run folder: config.yaml, log.txt, events, checkpoints, metrics.json
_C.SEED = 1024  # global seed (each rank adds its rank)
_C.SAVE_FREQ = 1  # save ckpt_epoch_N.pth every N epochs (last.pth and best.pth always)
_C.SAVE_KEEP = 0  # keep the newest N periodic ckpt_epoch_N.pth files, delete older ones (0 keeps all)
_C.PRINT_FREQ = 20  # progress line every N optimizer steps
_C.EVAL_FREQ = 1  # evaluate every N epochs (and after the last)
_C.DISTRIBUTED = False  # set by the launcher's environment / --distributed


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
            raise ConfigError(f"unknown config key {key}; see utils/config.py for the valid keys")
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
        "MODEL.ARCH": tuple(CLIP_SIZES) + (CUSTOM_ARCH,),
        "MODEL.ENCODER": ENCODERS,
        "MODEL.ATTN_BACKEND": BACKENDS,
        "TRAIN.PRECISION": tuple(PRECISION_DTYPES),
        "TRAIN.OPT_LEVEL": _OPT_LEVEL,
        "TRAIN.PRIVACY_LOSS": PRIVACY_MODES,
        "TEST.NUM_CROP": TEST_CROPS,
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
                "TRAIN.ADV_STEPS")
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
    if cfg.MODEL.ARCH == CUSTOM_ARCH:
        _validate_custom(cfg.MODEL.CUSTOM, cfg.DATA.INPUT_SIZE, HEAD_WIDTH)
    mean, std = cfg.DATA.PLANE_MEAN, cfg.DATA.PLANE_STD
    if (mean or std) and (len(mean) != 3 or len(std) != 3 or min(std) <= 0):
        raise ConfigError(f"DATA.PLANE_MEAN and DATA.PLANE_STD need 3 values each (std > 0) or both "
                          f"empty, got {list(mean)} and {list(std)}")
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
