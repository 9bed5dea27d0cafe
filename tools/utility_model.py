"""A fresh utility model: how much action an input encoder's output leaves usable (the utility axis
of the BDQ protocol, independent of MSPNet).

A torchvision 3D CNN (``--arch r3d_18 | r2plus1d_18``, or the frame-features GRU ``temporal``) is
trained from scratch on the frozen output of the configured input encoder (``MODEL.ENCODER``; a
learned encoder such as BDQ takes its parameters from ``--resume``) for the action labels of the
benchmark's training videos, and tested on its validation videos. Each video is read once, as the
attacks read it (:func:`privacy.views.attacker_dataset`: the segment centres, the centre
crop, through the shared data path with its film simulation); training augments by translation
and flip. Writes ``<output>/utility.json`` (percent: ``acc1``, ``acc5``, ``mean_class_acc``,
``chance``) and ``<output>/log.txt``.

Example::

    python tools/utility_model.py --opts MODEL.ENCODER rgb --arch r3d_18 --epochs 10 --output out/utility_rgb
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

import torch

from datasets import build_datasets
from privacy import VIDEO_ATTACKERS, build_attacker, topk_accuracy, train_attacker, video_probabilities
from privacy.views import attacker_dataset, planes_view, read_views
from trainers.checkpoint import load_checkpoint
from trainers.metrics import PERCENT, per_class_accuracy
from utils.allocator import keep_freed_memory
from utils.config import load_config
from utils.cli import run_to_json

logger = logging.getLogger(__name__)

DEFAULT_ARCH = "r3d_18"
DEFAULT_EPOCHS = 10
DEFAULT_LR = 1e-3
DEFAULT_BATCH = 16
TOP_K = (1, 5)
RESULT_NAME = "utility.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The tool's command line (``argv`` None = ``sys.argv``)."""
    parser = argparse.ArgumentParser(description="Train a fresh action model on an input encoder's output.")
    parser.add_argument("--config", default=None, help="experiment YAML (default: configs/demo.yaml)")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE config overrides")
    parser.add_argument("--resume", default="", help="trained checkpoint (the learned encoder's parameters)")
    parser.add_argument("--arch", choices=VIDEO_ATTACKERS, default=DEFAULT_ARCH)
    parser.add_argument("--weights", default="", help="local weights file of the network")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--output", required=True, help="folder of utility.json and log.txt")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Trains and tests the fresh utility model of ``args``; returns what utility.json holds."""
    cfg = load_config(args.config, args.opts)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.time()
    checkpoint = load_checkpoint(args.resume, allow_pickle=cfg.MODEL.ALLOW_PICKLE) if args.resume else None
    view = planes_view(cfg, checkpoint, args.resume).to(device).eval()
    splits = build_datasets(cfg, crop_on_device=False)
    label_of = {"label": {k: k for k in range(cfg.DATA.NUM_CLASSES)}}
    read = dict(batch_size=args.batch_size, num_workers=cfg.DATA.NUM_WORKERS, device=device)
    x_train, y_train = read_views(attacker_dataset(splits.val, splits.train.names), view, label_of, **read)
    x_test, y_test = read_views(attacker_dataset(splits.val, splits.val.names), view, label_of, **read)
    logger.info("utility data: %d train / %d val videos of %d classes, input %s (%.1f s)", len(x_train),
                len(x_test), cfg.DATA.NUM_CLASSES, tuple(x_train.shape[1:]), time.time() - start)
    torch.manual_seed(cfg.SEED)
    if device.type == "cpu":
        keep_freed_memory()
    model = build_attacker(args.arch, cfg.DATA.NUM_CLASSES, cfg.DATA.INPUT_SIZE, 0, args.weights,
                           num_frames=x_train.shape[1]).to(device)
    train_attacker(model, x_train, y_train[:, 0], epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                   seed=cfg.SEED, augment=True, device=device)
    probs = video_probabilities(model, x_test, args.batch_size, device, per_frame=False)
    labels = y_test[:, 0]
    per_class, counts = per_class_accuracy(labels, probs.argmax(1) == labels, cfg.DATA.NUM_CLASSES)
    metrics = {
        "acc1": topk_accuracy(probs, labels, TOP_K[0]), "acc5": topk_accuracy(probs, labels, TOP_K[1]),
        "mean_class_acc": float(per_class[counts > 0].mean()), "chance": PERCENT / cfg.DATA.NUM_CLASSES,
        "videos": len(x_test), "train_videos": len(x_train), "arch": args.arch, "encoder": cfg.MODEL.ENCODER,
        "epochs": args.epochs, "lr": args.lr, "resume": args.resume, "seconds": round(time.time() - start, 1),
    }
    logger.info("fresh utility model %s on %s: action top-1 %.2f%%, top-5 %.2f%%, mean class %.2f%% "
                "(chance %.2f%%) on %d videos", args.arch, cfg.MODEL.ENCODER, metrics["acc1"], metrics["acc5"],
                metrics["mean_class_acc"], metrics["chance"], len(x_test))
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Runs the tool and writes utility.json; returns the exit code (2 on a user error)."""
    args = parse_args(argv)
    return run_to_json(args.output, lambda: run(args), RESULT_NAME)


if __name__ == "__main__":
    sys.exit(main())
