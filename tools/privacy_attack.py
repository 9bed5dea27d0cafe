"""Fresh-attacker privacy evaluation (the BDQ protocol): how much identity (or, on P3AR-PKU, how
many appearance attributes) can an adversary learn?

The adversary gets one of three things and trains a NEW classifier of ``--label`` on it (identity,
one attribute, or ``attributes``: the five attributes of P3AR-PKU at once, one softmax each):

- ``--target frames``: the degraded frames the sealed camera records (the data copy the config
  reads, plus ``LPS.LEVEL`` on-the-fly film and ``SPP.ENABLED`` obfuscation): frame t of the RGB request,
  CLIP-normalised; optionally restored first with the known film PSF (``--restore wiener|richardson_lucy``)
  or by a restorer trained on other videos (``--restore learned --restorer CKPT``, tools/train_restorer.py).
- ``--target planes``: the model input: the configured input encoder (``MODEL.ENCODER``) on its
  own items, on every layout it reads (packed and precomputed too); BDQ's learned blur and bins
  come from ``--resume`` when given.
- ``--target features``: the frozen trained model's ``encode_video`` (``--resume`` required).

The views come from the shared data path (:func:`datasets.build_datasets`: source, film,
restoration, test item builder), reused over the attacker's split with one view per video (the
segment centres, the centre crop). Frame attackers on frames and planes are timm image models
trained on single frames from scratch (or from a local ``--weights`` file); a test video is
classified by the softmax averaged over its T frames (the BDQ protocol). Video attackers
(``temporal``, ``r3d_18``, ``r2plus1d_18``: STPrivacy's protocol) train and test on whole clips.
Feature attackers are linear and MLP probes on the standardised video features.

Split rule (docs/privacy.md): inside every identity, NTU videos of odd replication (R001, R003,
...) train the attacker and videos of even replication test it; P3AR-PKU videos of setup 1 train
it and those of setup 2 test it. No video is in both halves and the same people appear in both;
identities without a video in one half are left out (and logged). Every video of the configured
data folder is used, whatever the action benchmark split (``--videos all``), or only the
benchmark's validation videos (``--videos val``, the default with ``--restore learned``: the videos
the restorer did not train on, which is checked).

Writes ``<output>/privacy.json`` (percent: identity top-1/top-5; for every label its top-1,
average precision and macro-F1 with chance levels; cMAP and macro-F1 over all of them, the
attribute protocol of SPAct / STPrivacy / VISPR, :mod:`privacy.metrics`; for ``--target frames``
where clean frames exist, the synthetic set or an on-the-fly camera, ``psnr`` and ``ssim`` of the
attacked test frames, restored or not, against them) and ``<output>/log.txt``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

import torch
from yacs.config import CfgNode

from datasets import Restoration, build_datasets
from datasets.loader import RGB_LAYOUTS
from datasets.names import DATASET_LABELS
from datasets.pku import PKU_ATTRIBUTES
from datasets.restore import RESTORE_METHODS, RL_ITERATIONS, WIENER_NSR, check_learned_restorer
from models import FrameRequest
from models.encoders import RGBEncoder
from privacy import (FEATURE_ATTACKERS, FRAME_ATTACKERS, VIDEO_ATTACKERS, AttackError, Split, build_attacker,
                     split_for_attacker, train_attacker, video_probabilities)
from privacy.metrics import label_metrics
from privacy.views import (ALL_ATTRIBUTES, View, attacker_dataset, camera_device, clean_views, compact_labels,
                           feature_model, film_level, frame_fidelity, has_clean_reference, heads_of, planes_view,
                           read_views)
from trainers.checkpoint import load_checkpoint
from utils.allocator import keep_freed_memory
from utils.config import load_config
from utils.cli import run_to_json

logger = logging.getLogger(__name__)

TARGETS = ("frames", "planes", "features")
VIDEOS = ("all", "val")  # --videos: every video of the data folder, or the benchmark's validation videos
LABELS = ("identity",) + tuple(PKU_ATTRIBUTES) + (ALL_ATTRIBUTES,)
FRAME_EPOCHS = 5  # default epochs of an image attacker (small: the demo frames are 32 px)
FEATURE_EPOCHS = 200  # default epochs of a feature probe (full-batch, cheap)
FRAME_LR = 1e-3
FEATURE_LR = 1e-2
FRAME_BATCH = 64
STD_EPS = 1e-6  # feature standardisation guard



def attack_videos(args: argparse.Namespace) -> str:
    """``--videos``, defaulting to the restorer's held-out videos (val) with ``--restore learned``."""
    return args.videos or ("val" if args.restore == "learned" else "all")


def build_views(cfg: CfgNode, args: argparse.Namespace, device: torch.device) -> tuple[
        Split, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Splits the data folder and reads every video of the split into the attacker's input.

    Args:
        cfg: the experiment config.
        args: the tool's arguments (target, restore, restorer, videos, resume, batch size, max videos).
        device: where the encoder or the frozen model runs.

    Returns:
        ``(split, label_of, x_train, y_train, x_test, y_test)``: x is [N, T, 3, S, S] (frames,
        planes) or [N, E] (features); y [N, G] holds the compact classes of ``label_of`` (identity:
        positions in ``split.identities``).

    Raises:
        AttackError: options that do not fit the data or the checkpoint.
    """
    restoration = None
    if args.restore != "none":
        level = film_level(cfg, args.level)
        if level == 0:
            raise AttackError("--restore needs the film level: pass --level N or read LPS data "
                              "(DATA.SYNTHETIC.SOURCE lps or LPS.LEVEL > 0)")
        restoration = Restoration(args.restore, level, args.nsr, args.rl_iterations, args.restorer, camera_device(cfg))
    if args.target == "frames" and cfg.DATA.LAYOUT not in RGB_LAYOUTS:
        raise AttackError(f"--target frames reads the camera's RGB frames, which DATA.LAYOUT "
                          f"{cfg.DATA.LAYOUT} does not hold; use the video or frames layout or --target planes")
    checkpoint = load_checkpoint(args.resume, allow_pickle=cfg.MODEL.ALLOW_PICKLE) if args.resume else None
    view: View
    request: FrameRequest | None = None  # None: the configured encoder's frames
    if args.target == "frames":
        view, request = RGBEncoder(), RGBEncoder.request
    # the CPU crop: film and restoration work on the decoded RGB frames
    splits = build_datasets(cfg, request=request, restoration=restoration, crop_on_device=False)
    if args.target == "planes":
        view = planes_view(cfg, checkpoint, args.resume).to(device).eval()
    elif args.target == "features":
        view = feature_model(cfg, checkpoint, splits.class_names).to(device).eval().encode_video
    names = splits.val.names if attack_videos(args) == "val" else splits.train.names + splits.val.names
    if restoration is not None and restoration.method == "learned":
        check_learned_restorer(args.restorer, restoration.level, names)
    split = split_for_attacker(names, args.max_videos)
    if len(split.identities) < 2:
        raise AttackError("the attacker split needs at least two identities with odd- and "
                          f"even-replication videos; the data has {len(split.identities)}")
    if split.dropped:
        logger.warning("%d identities have videos in only one half and are left out: %s",
                       len(split.dropped), split.dropped)
    label_of = compact_labels(split.train + split.test, heads_of(args.label), split.identities)
    out = []
    for part, names in (("train", split.train), ("test", split.test)):
        start = time.time()
        out += read_views(attacker_dataset(splits.val, names), view, label_of, batch_size=args.batch_size,
                          num_workers=cfg.DATA.NUM_WORKERS, device=device)
        logger.info("attacker %s data: %d videos read as %s (%.1f s)", part, len(out[-1]),
                    args.target, time.time() - start)
    return (split, label_of, *out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The tool's command line (``argv`` None = ``sys.argv``)."""
    parser = argparse.ArgumentParser(description="Train a fresh identity / attribute attacker (BDQ protocol).")
    parser.add_argument("--config", default=None, help="experiment YAML (default: configs/demo.yaml)")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE config overrides")
    parser.add_argument("--resume", default="", help="trained checkpoint (features; BDQ planes)")
    parser.add_argument("--target", choices=TARGETS, default="frames")
    parser.add_argument("--label", choices=LABELS, default="identity",
                        help="what the attacker learns (P3AR-PKU: an attribute, or all five: attributes)")
    parser.add_argument("--attacker", choices=tuple(FRAME_ATTACKERS) + VIDEO_ATTACKERS + FEATURE_ATTACKERS,
                        default=None, help="frame attackers (softmax averaged over T): resnet18 (default for "
                        "frames/planes), resnet50, vit_small; video attackers on the whole clip: temporal, "
                        "r3d_18, r2plus1d_18; feature probes: mlp (default for features), linear")
    parser.add_argument("--weights", default="", help="local weights file of an image attacker")
    parser.add_argument("--restore", choices=RESTORE_METHODS, default="none",
                        help="restore the frames first (reconstruction attack): the film's known-PSF deconvolution "
                        "(wiener, richardson_lucy), ADMM-TV for the lensless and coded-aperture cameras, or learned")
    parser.add_argument("--restorer", default="", help="--restore learned: a tools/train_restorer.py checkpoint")
    parser.add_argument("--videos", choices=VIDEOS, default=None,
                        help="attack every video or the benchmark's validation videos (default: val with "
                             "--restore learned, else all)")
    parser.add_argument("--level", type=int, default=None, help="film level of the PSF (default: from the config)")
    parser.add_argument("--nsr", type=float, default=WIENER_NSR, help="Wiener noise-to-signal ratio")
    parser.add_argument("--rl-iterations", type=int, default=RL_ITERATIONS)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=FRAME_BATCH)
    parser.add_argument("--max-videos", type=int, default=0,
                        help="at most N videos per identity in each half, evenly spread (0 = all)")
    parser.add_argument("--output", required=True, help="folder of privacy.json and log.txt")
    return parser.parse_args(argv)


def _check_args(args: argparse.Namespace, dataset: str) -> None:
    missing = [head for head in heads_of(args.label) if head not in DATASET_LABELS[dataset]]
    if missing:
        raise AttackError(f"--label {args.label} needs {', '.join(missing)} labels, which DATA.DATASET {dataset} "
                          f"names do not carry; choose from {', '.join(DATASET_LABELS[dataset])}")
    if args.attacker is None:
        args.attacker = "mlp" if args.target == "features" else "resnet18"
    if (args.target == "features") != (args.attacker in FEATURE_ATTACKERS):
        raise AttackError(f"--attacker {args.attacker} does not fit --target {args.target}: use "
                          f"{'linear or mlp' if args.target == 'features' else 'a frame or video attacker'}")
    if args.restore != "none" and args.target == "features":
        raise AttackError("--restore applies to frames and planes, not to --target features")
    if (args.restore == "learned") != bool(args.restorer):
        raise AttackError("--restore learned needs --restorer CKPT (tools/train_restorer.py), and --restorer "
                          "only serves --restore learned")
    args.videos = attack_videos(args)
    if args.epochs is None:
        args.epochs = FEATURE_EPOCHS if args.target == "features" else FRAME_EPOCHS
    if args.lr is None:
        args.lr = FEATURE_LR if args.target == "features" else FRAME_LR


def run(args: argparse.Namespace) -> dict:
    """Runs the attack of ``args``; returns the metrics written to privacy.json."""
    cfg = load_config(args.config, args.opts)
    _check_args(args, cfg.DATA.DATASET)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.time()
    split, label_of, x_train, y_train, x_test, y_test = build_views(cfg, args, device)
    groups = [len(compact) for compact in label_of.values()]
    logger.info("attacker data: %d train / %d test videos, %d identities, labels %s, input %s (%.1f s)",
                len(x_train), len(x_test), len(split.identities),
                ", ".join(f"{head} ({n} classes)" for head, n in zip(label_of, groups)),
                tuple(x_train.shape[1:]), time.time() - start)
    fidelity = {}
    if args.target == "frames" and has_clean_reference(cfg, args.restore != "none"):
        clean = clean_views(cfg, split.test, label_of, batch_size=args.batch_size, device=device)
        if clean.shape == x_test.shape:  # no video was unreadable in only one of the two copies
            fidelity = frame_fidelity(x_test, clean)
            logger.info("attacked test frames against the clean ones: PSNR %.2f dB, SSIM %.4f (%d frames)",
                        fidelity["psnr"], fidelity["ssim"], fidelity["fidelity_frames"])
        else:
            logger.warning("PSNR/SSIM skipped: %d attacked but %d clean test videos were read", len(x_test), len(clean))
    torch.manual_seed(cfg.SEED)
    if device.type == "cpu":
        keep_freed_memory()
    video = args.attacker in VIDEO_ATTACKERS
    model = build_attacker(args.attacker, sum(groups), cfg.DATA.INPUT_SIZE, x_train.shape[-1],
                           args.weights, num_frames=x_train.shape[1] if x_train.ndim == 5 else 1).to(device)
    if args.target == "features":
        mean, std = x_train.mean(0), x_train.std(0) + STD_EPS
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
        train_x, train_y = x_train, y_train
        batch = len(x_train)
    elif video:  # whole clips
        train_x, train_y, batch = x_train, y_train, args.batch_size
    else:
        t = x_train.shape[1]
        train_x, train_y = x_train.flatten(0, 1), y_train.repeat_interleave(t, dim=0)  # single frames
        batch = args.batch_size
    train_attacker(model, train_x, train_y, epochs=args.epochs, lr=args.lr, batch_size=batch,
                   seed=cfg.SEED, augment=args.target != "features", device=device, groups=groups)
    probs = video_probabilities(model, x_test, args.batch_size, device, groups=groups,
                                per_frame=args.target != "features" and not video)
    metrics = {
        **label_metrics(probs, y_test, label_of),
        **fidelity,
        "label": args.label,
        "videos": len(x_test),
        "train_videos": len(x_train),
        "identities": len(split.identities),
        "target": args.target,
        "attacker": args.attacker,
        "restore": args.restore,
        "restorer": args.restorer,
        "attack_videos": args.videos,
        "film_level": film_level(cfg, args.level),
        "camera": camera_device(cfg),
        "encoder": cfg.MODEL.ENCODER,
        "epochs": args.epochs,
        "resume": args.resume,
        "split": "NTU: odd replications train, even test; P3AR-PKU: setup 1 trains, setup 2 tests; "
                 "inside each identity",
        "max_videos": args.max_videos,
        "seconds": round(time.time() - start, 1),
    }
    for head, report in metrics["labels"].items():
        logger.info("privacy attack %s/%s (restore %s) on %s: top-1 %.2f%% (chance %.2f%%), AP %.2f%% "
                    "(chance %.2f%%), macro-F1 %.2f%% (chance %.2f%%) on %d videos", args.target, args.attacker,
                    args.restore, head, report["acc1"], report["acc1_chance"], report["ap"], report["ap_chance"],
                    report["f1"], report["f1_chance"], report["videos"])
    if "id_acc1" in metrics:
        logger.info("identity top-1 %.2f%%, top-5 %.2f%%, chance %.2f%% (%d identities)", metrics["id_acc1"],
                    metrics["id_acc5"], metrics["chance"], len(split.identities))
    logger.info("cMAP %.2f%% (chance %.2f%%), macro-F1 %.2f%% (chance %.2f%%)", metrics["cmap"],
                metrics["cmap_chance"], metrics["macro_f1"], metrics["macro_f1_chance"])
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Runs the attack and writes privacy.json; returns the exit code (2 on a user error)."""
    args = parse_args(argv)
    return run_to_json(args.output, lambda: run(args), "privacy.json")


if __name__ == "__main__":
    sys.exit(main())
