"""Learned reconstruction attack: train a restoration network on (clean, sealed) frame pairs.

The adversary owns a copy of the film (it is sold openly), records people of its own through it
and trains a network to undo it (docs/privacy.md, "Learned restoration"). Pairs: the clean RGB
frames of the config's data (the synthetic set's raw copy, or the clean videos of ``DATA.ROOT``)
and the same frames through the film simulation at ``--levels`` (:mod:`datasets.pairs`). The
restorer trains on the action benchmark's training videos and is measured on its validation
videos (xsub: other people; xset: the same people in other setups).

Networks (:mod:`models.restorers`): ``unet`` (baseline) or ``restormer`` (MDTA + GDFN blocks, the
release's choice), sizes from the arguments. Loss: L1 + ``--ssim-weight`` (1 - SSIM). AdamW,
per-step cosine schedule, mixed precision (``--precision``), ``<output>/last.pth`` written
atomically at every epoch (``--resume`` continues from it bit for bit: same batches, same state).

Writes ``<output>/restorer.json``: per film level the PSNR (dB) and SSIM against the clean frames
of the sealed frames, Wiener and Richardson-Lucy with the known PSF, and the network, over every
held-out frame; ``<output>/restorer_level<L>.png``: clean / sealed / Wiener / Richardson-Lucy /
learned on the same frames; ``<output>/log.txt``. The checkpoint is what
``tools/privacy_attack.py --restore learned --restorer <output>/last.pth`` reads.

Example::

    python tools/train_restorer.py --arch restormer --levels 2 --epochs 4 --output output/restorer
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
from yacs.config import CfgNode

from datasets.pairs import PairData, build_pairs
from datasets.restore import RL_ITERATIONS, WIENER_NSR
from models.convert import load_checkpoint_file
from models.restorers import FFN_EXPANSION, RESTORER_ARCHS, RESTORER_FORMAT, build_restorer
from trainers.checkpoint import LAST_NAME, save_checkpoint
from trainers.restorer import METHODS, RestorerTrainer, evaluate_restoration, fit
from utils.config import load_config
from utils.errors import UserError
from utils.image_metrics import psnr, ssim
from utils.cli import run_to_json
from utils.misc import capture_rng_state, restore_rng_state

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
DEFAULT_BLOCKS = {"unet": (1, 1, 1), "restormer": (1, 2, 2)}
DEFAULT_HEADS = (1, 2, 4)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
RUN_KEYS = ("arch", "arch_kwargs", "levels", "batch_size", "frames", "patch", "lr", "weight_decay",
            "warmup_steps", "ssim_weight", "grad_clip", "seed")  # must match to resume
COLUMNS = {"clean": "clean", "sealed": "sealed", "wiener": "Wiener", "richardson_lucy": "Richardson-Lucy",
           "learned": "learned"}
TILE_INCHES = 1.9


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The tool's command line (``argv`` None = ``sys.argv``)."""
    p = argparse.ArgumentParser(description="Train a restoration network on clean / sealed frame pairs.")
    p.add_argument("--config", default=None, help="experiment YAML (default: configs/demo.yaml)")
    p.add_argument("--opts", nargs="*", default=[], help="KEY VALUE config overrides")
    p.add_argument("--arch", choices=RESTORER_ARCHS, default="restormer")
    p.add_argument("--output", required=True, help="folder of last.pth, restorer.json, the pictures, log.txt")
    p.add_argument("--levels", type=int, nargs="+", default=None,
                   help="film levels of the pairs (default: LPS.LEVEL, else DATA.SYNTHETIC.LPS_LEVEL)")
    p.add_argument("--width", type=int, default=16, help="channels of the top level")
    p.add_argument("--blocks", type=int, nargs="+", default=None,
                   help="blocks per level (default: unet 1 1 1, restormer 1 2 2)")
    p.add_argument("--heads", type=int, nargs="+", default=list(DEFAULT_HEADS), help="restormer: heads per level")
    p.add_argument("--refinement", type=int, default=1, help="restormer: refinement blocks")
    p.add_argument("--ffn-expansion", type=float, default=FFN_EXPANSION, help="restormer: GDFN width / channels")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8, help="videos per step")
    p.add_argument("--frames", type=int, default=4, help="frames per video and step")
    p.add_argument("--patch", type=int, default=0, help="training crop side (0 = whole frames)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--ssim-weight", type=float, default=0.1, help="weight of 1 - SSIM beside L1 (0 = L1)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0 = off)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--num-workers", type=int, default=None, help="data-loader workers (default DATA.NUM_WORKERS)")
    p.add_argument("--max-train-videos", type=int, default=0, help="at most N training videos (0 = all)")
    p.add_argument("--max-val-videos", type=int, default=0, help="at most N held-out videos (0 = all)")
    p.add_argument("--eval-batch-size", type=int, default=8, help="held-out videos per batch")
    p.add_argument("--nsr", type=float, default=WIENER_NSR, help="Wiener noise-to-signal ratio")
    p.add_argument("--rl-iterations", type=int, default=RL_ITERATIONS)
    p.add_argument("--print-every", type=int, default=20, help="steps between progress lines")
    p.add_argument("--save-every", type=int, default=None, help="steps between checkpoints (default: an epoch)")
    p.add_argument("--stop-after", type=int, default=0,
                   help="end this run after N steps of the schedule (0 = run it out); --resume continues")
    p.add_argument("--resume", action="store_true", help="continue <output>/last.pth")
    p.add_argument("--picture-frames", type=int, default=4, help="rows of each picture")
    return p.parse_args(argv)


def restorer_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The network's keyword arguments from the command line (plain types, for the checkpoint)."""
    blocks = list(args.blocks or DEFAULT_BLOCKS[args.arch])
    if args.arch == "unet":
        return {"width": args.width, "blocks": blocks}
    return {"width": args.width, "blocks": blocks, "heads": list(args.heads), "refinement": args.refinement,
            "expansion": args.ffn_expansion}


def _check_args(args: argparse.Namespace) -> None:
    for name in ("epochs", "batch_size", "frames", "width", "print_every", "eval_batch_size"):
        if getattr(args, name) < (0 if name == "epochs" else 1):
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.arch == "restormer" and len(args.heads) != len(args.blocks or DEFAULT_BLOCKS[args.arch]):
        raise UserError(f"--heads needs one count per level of --blocks, got {args.heads}")
    if args.levels and not all(1 <= level <= 3 for level in args.levels):
        raise UserError(f"--levels must be 1, 2 or 3, got {args.levels}")


def _device_and_precision(args: argparse.Namespace) -> tuple[torch.device, str]:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but no CUDA device is available; use --device cpu")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    return device, precision


def _check_resume(state: dict[str, Any], run: dict[str, Any], train_names: list[str], path: Path) -> None:
    if state.get("format") != RESTORER_FORMAT:
        raise UserError(f"{path} is not a restorer checkpoint; choose another --output")
    saved = state["run"]
    changed = ", ".join(f"{key} {saved.get(key)} -> {run[key]}" for key in RUN_KEYS if saved.get(key) != run[key])
    if changed:
        raise UserError(f"--resume: {changed} differ from {path}; pass the run's options or choose another --output")
    if saved.get("epochs") != run["epochs"]:
        logger.warning("--resume: %s epochs -> %s; the schedule follows the new length", saved.get("epochs"),
                       run["epochs"])
    if state["train_names"] != train_names:
        raise UserError(f"--resume: the training videos differ from those of {path}; pass the run's config")


def train(args: argparse.Namespace, cfg: CfgNode, data: PairData, device: torch.device, precision: str,
          output: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Trains (or resumes) the restorer; returns the model and the last checkpoint dict."""
    kwargs = restorer_kwargs(args)
    levels = list(data.val)
    torch.manual_seed(cfg.SEED)
    model = build_restorer(args.arch, **kwargs).to(device)
    per_epoch = len(data.train) // args.batch_size
    if per_epoch < 1:
        raise UserError(f"{len(data.train)} training videos do not fill one batch of --batch-size "
                        f"{args.batch_size}; lower it")
    total = args.epochs * per_epoch
    trainer = RestorerTrainer(model, lr=args.lr, weight_decay=args.weight_decay, total_steps=total,
                              warmup_steps=args.warmup_steps, ssim_weight=args.ssim_weight, precision=precision,
                              grad_clip=args.grad_clip, device=device)
    run = {"arch": args.arch, "arch_kwargs": kwargs, "levels": levels, "batch_size": args.batch_size,
           "frames": args.frames, "patch": args.patch, "lr": args.lr, "weight_decay": args.weight_decay,
           "warmup_steps": args.warmup_steps, "ssim_weight": args.ssim_weight, "grad_clip": args.grad_clip,
           "seed": cfg.SEED, "precision": precision, "epochs": args.epochs}
    path = output / LAST_NAME
    seconds = 0.0  # training time of the earlier runs of a resumed checkpoint
    if args.resume:
        state = load_checkpoint_file(str(path), allow_pickle=False)
        _check_resume(state, run, data.train.names, path)
        trainer.load_state_dict(state["trainer"])
        restore_rng_state(state["rng"])
        seconds = float(state.get("seconds", 0.0))
        logger.info("resumed %s at step %d of %d", path, trainer.step, total)
    elif path.exists():
        raise UserError(f"{path} exists; pass --resume to continue it or choose another --output")
    logger.info("restorer %s %s: %d parameters, %d steps (%d epochs of %d), %s on %s", args.arch, kwargs,
                sum(p.numel() for p in model.parameters()), total, args.epochs, per_epoch, precision, device)
    checkpoint: dict[str, Any] = {}
    start = time.time()

    def save() -> None:
        checkpoint.clear()
        checkpoint.update(format=RESTORER_FORMAT, version=CHECKPOINT_VERSION, arch=args.arch, arch_kwargs=kwargs,
                          levels=levels, model=model.state_dict(), trainer=trainer.state_dict(), total_steps=total,
                          run=run, train_names=list(data.train.names),
                          val_names=list(next(iter(data.val.values())).names), config=cfg.dump(),
                          rng=capture_rng_state(), seconds=seconds + time.time() - start)
        save_checkpoint(checkpoint, path)

    stop = min(total, trainer.step + args.stop_after) if args.stop_after else total
    fit(trainer, data.train, batch_size=args.batch_size, total_steps=total, stop_at=stop,
        num_workers=args.num_workers, seed=cfg.SEED, save=save,
        save_every=per_epoch if args.save_every is None else args.save_every, print_every=args.print_every)
    if not checkpoint:  # nothing was left to train: the run had finished
        save()
    return model, checkpoint


def write_pictures(kept: dict[int, dict[str, torch.Tensor]], output: Path) -> list[str]:
    """One PNG per level: a row per frame, the columns of :data:`COLUMNS` with PSNR / SSIM."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the headless backend

    files = []
    for level, frames in kept.items():
        rows = len(frames["clean"])
        fig, axes = plt.subplots(rows, len(COLUMNS), figsize=(TILE_INCHES * len(COLUMNS), TILE_INCHES * rows),
                                 squeeze=False)
        for r in range(rows):
            clean = frames["clean"][r:r + 1]
            for c, (name, title) in enumerate(COLUMNS.items()):
                image = frames[name][r:r + 1]
                ax = axes[r, c]
                ax.imshow(image[0].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
                ax.set_xticks([]), ax.set_yticks([])
                label = title if name == "clean" else (
                    f"{title}\n{float(psnr(image, clean)[0]):.1f} dB / {float(ssim(image, clean)[0]):.3f}")
                ax.set_title(label if r == 0 or name != "clean" else "", fontsize=8)
        fig.suptitle(f"film level {level}: held-out frames (PSNR / SSIM against clean)", fontsize=9)
        fig.tight_layout()
        name = f"restorer_level{level}.png"
        fig.savefig(output / name, dpi=100)
        plt.close(fig)
        files.append(name)
    return files


def run(args: argparse.Namespace, output: Path) -> dict[str, Any]:
    """Trains and measures the restorer of ``args``; returns the report (restorer.json)."""
    _check_args(args)
    cfg = load_config(args.config, args.opts)
    device, precision = _device_and_precision(args)
    if args.num_workers is None:
        args.num_workers = cfg.DATA.NUM_WORKERS
    levels = tuple(args.levels or [cfg.LPS.LEVEL or cfg.DATA.SYNTHETIC.LPS_LEVEL])
    data = build_pairs(cfg, levels=levels, frames=args.frames, patch=args.patch, max_train=args.max_train_videos,
                       max_val=args.max_val_videos)
    model, checkpoint = train(args, cfg, data, device, precision, output)
    report: dict[str, Any] = {"step": checkpoint["trainer"]["step"], "total_steps": checkpoint["total_steps"]}
    if report["step"] < report["total_steps"]:
        logger.info("stopped at step %d of %d (--stop-after); --resume continues", report["step"],
                    report["total_steps"])
        return report
    start = time.time()
    results, kept = {}, {}
    for level, pairs in data.val.items():
        results[str(level)], kept[level] = evaluate_restoration(
            model, pairs, level, batch_size=args.eval_batch_size, num_workers=args.num_workers, device=device,
            precision=precision, nsr=args.nsr, iterations=args.rl_iterations, keep=args.picture_frames)
        for method in METHODS:
            logger.info("level %d %-16s PSNR %6.2f dB  SSIM %.4f", level, method, results[str(level)][method]["psnr"],
                        results[str(level)][method]["ssim"])
    report.update(
        levels=results, arch=args.arch, arch_kwargs=checkpoint["arch_kwargs"],
        parameters=sum(p.numel() for p in model.parameters()), epochs=args.epochs, precision=precision,
        device=device.type, train_videos=len(data.train), heldout_videos=len(next(iter(data.val.values()))),
        frames_per_video=args.frames, data=str(data.root), benchmark=f"{cfg.DATA.DATASET} {cfg.DATA.BENCHMARK}",
        split="the restorer trains on the action benchmark's training videos and is scored on its validation "
              "videos (xsub: other people; xset: the same people in other setups)",
        metric="mean over held-out frames of PSNR (dB) and SSIM (Gaussian 11, sigma 1.5, K 0.01 / 0.03, RGB "
               "mean) against the clean frames, outputs rounded to uint8",
        nsr=args.nsr, rl_iterations=args.rl_iterations, checkpoint=str(output / LAST_NAME),
        seconds_train=round(checkpoint["seconds"], 1), seconds_eval=round(time.time() - start, 1))
    report["pictures"] = write_pictures(kept, output)
    return report


def _report_or_none(report: dict) -> dict | None:
    """The report to write: None when no level was scored (``--stop-after`` before evaluation)."""
    return report if "levels" in report else None


def main(argv: list[str] | None = None) -> int:
    """Trains the restorer and writes restorer.json; returns the exit code (2 on a user error)."""
    args = parse_args(argv)
    return run_to_json(args.output, lambda: _report_or_none(run(args, Path(args.output))), "restorer.json")


if __name__ == "__main__":
    sys.exit(main())
