"""Training and measurement of a restoration network (the learned reconstruction attack).

One optimizer step is :meth:`RestorerTrainer.train_step`: sealed frames through the network under
autocast, ``L1 + ssim_weight * (1 - SSIM)`` against the clean frames in float32, backward (scaled
for fp16), gradient clipping, AdamW, the per-step cosine schedule. :func:`fit` runs the steps of
the whole schedule from wherever the trainer's step counter stands: the data order of a step is a
pure function of (seed, step), so a resumed run draws the same batches as an uninterrupted one.
:func:`evaluate_restoration` scores the network against the sealed frames themselves and the
known-PSF deconvolutions (Wiener, Richardson-Lucy) on the same held-out frames.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from datasets.loader import TrainSampler, worker_init
from datasets.pairs import FramePairs, collate_pairs
from datasets.restore import RL_ITERATIONS, WIENER_NSR, restore_frames
from trainers.optim import CosineWarmupScheduler, build_param_groups
from trainers.precision import autocast_context, build_grad_scaler
from utils.errors import UserError
from utils.image_metrics import psnr, ssim, ssim_map
from utils.misc import PIXEL_MAX, AverageMeter, format_seconds, memory_mib

logger = logging.getLogger(__name__)

METHODS = ("sealed", "wiener", "richardson_lucy", "learned")  # the rows of the measurement
ADAM_BETAS = (0.9, 0.999)


def to_unit(frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 frames -> float32 in [0, 1] on ``device``."""
    return frames.to(device, non_blocking=True).float() / PIXEL_MAX


def quantize(frames: torch.Tensor) -> torch.Tensor:
    """[0, 1] frames rounded to the uint8 grid (what a restored clip hands on), still float."""
    return (frames.clamp(0, 1) * PIXEL_MAX).round() / PIXEL_MAX


class RestorerTrainer:
    """The restorer's optimizer step and checkpointed state.

    Args:
        model: the restoration network (on ``device``).
        lr: peak learning rate.
        weight_decay: AdamW decoupled weight decay (tensors with ndim >= 2 only).
        total_steps: optimizer steps of the schedule.
        warmup_steps: linear warmup steps.
        ssim_weight: weight of ``1 - SSIM`` beside L1 (0 = L1 only).
        precision: fp32 | bf16 | fp16 (autocast; a grad scaler for fp16).
        grad_clip: max gradient norm (0 = off).
        device: the training device.
    """

    def __init__(self, model: nn.Module, *, lr: float, weight_decay: float, total_steps: int, warmup_steps: int,
                 ssim_weight: float, precision: str, grad_clip: float, device: torch.device) -> None:
        self.model = model
        self.ssim_weight = ssim_weight
        self.precision = precision
        self.grad_clip = grad_clip
        self.device = device
        self.optimizer = torch.optim.AdamW(build_param_groups(model, lr, 1.0, weight_decay), betas=ADAM_BETAS)
        self.scheduler = CosineWarmupScheduler(self.optimizer, total_steps=total_steps, warmup_steps=warmup_steps)
        self.scaler = build_grad_scaler(precision, device)
        self.step = 0

    def loss(self, restored: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of float32 frames in [0, 1] and its parts (``l1``, ``ssim``)."""
        l1 = (restored - clean).abs().mean()
        parts = {"l1": float(l1.detach())}
        total = l1
        if self.ssim_weight:
            similarity = ssim_map(restored, clean).mean()
            total = total + self.ssim_weight * (1 - similarity)
            parts["ssim"] = float(similarity.detach())
        return total, parts

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimizer step on a batch of :func:`~datasets.pairs.collate_pairs`.

        Returns:
            ``loss`` and its parts, ``lr`` (before the step) and ``grad_norm``.
        """
        self.model.train()
        sealed, clean = to_unit(batch["sealed"], self.device), to_unit(batch["clean"], self.device)
        with autocast_context(self.precision, self.device):
            restored = self.model(sealed)
        loss, parts = self.loss(restored.float(), clean)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip or float("inf"))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return {"loss": float(loss.detach()), **parts, "lr": lr, "grad_norm": float(norm)}

    def state_dict(self) -> dict[str, Any]:
        """Model, optimizer, schedule, scaler and step (tensors and plain types)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict` (strict model load)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])


def step_keys(num_videos: int, batch_size: int, *, seed: int, start: int, stop: int) -> list[tuple[int, int]]:
    """The ``(index, epoch)`` keys of optimizer steps ``start`` .. ``stop - 1`` (each epoch a fresh
    permutation, its last partial batch dropped).

    Raises:
        UserError: fewer videos than one batch.
    """
    per_epoch = num_videos // batch_size
    if per_epoch < 1:
        raise UserError(f"{num_videos} training videos do not fill one batch of --batch-size {batch_size}; "
                        "lower it")
    keys: list[tuple[int, int]] = []
    sampler = TrainSampler(num_videos, seed=seed)
    for epoch in range(start // per_epoch, (stop - 1) // per_epoch + 1):
        sampler.set_epoch(epoch)
        order = list(sampler)[:per_epoch * batch_size]
        first = max(start - epoch * per_epoch, 0) * batch_size
        last = min(stop - epoch * per_epoch, per_epoch) * batch_size
        keys += order[first:last]
    return keys


def fit(trainer: RestorerTrainer, dataset: FramePairs, *, batch_size: int, total_steps: int, stop_at: int,
        num_workers: int, seed: int, save: Callable[[], None], save_every: int, print_every: int) -> None:
    """Runs the optimizer steps from ``trainer.step`` to ``stop_at`` (at most ``total_steps``).

    Args:
        trainer: the trainer (its ``step`` is where the run stands).
        dataset: the training pairs.
        batch_size: videos per step.
        total_steps: steps of the schedule.
        stop_at: the step this run ends at (``total_steps``, or earlier for a run in slices).
        num_workers: data-loader workers.
        seed: seed of the data order.
        save: writes the checkpoint.
        save_every: steps between checkpoints (0 = only at the end).
        print_every: steps between progress lines.
    """
    stop = min(stop_at, total_steps)
    if trainer.step >= stop:
        return
    keys = step_keys(len(dataset), batch_size, seed=seed, start=trainer.step, stop=stop)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=keys, collate_fn=collate_pairs,
                        num_workers=num_workers, worker_init_fn=worker_init if num_workers else None,
                        pin_memory=trainer.device.type == "cuda")
    meters = {name: AverageMeter() for name in ("loss", "l1", "ssim")}
    first, start, frames, saved = trainer.step, time.time(), 0, -1
    for batch in loader:
        if not len(batch["clean"]):
            logger.warning("step %d: every video of the batch was unreadable; skipped", trainer.step + 1)
            continue
        out = trainer.train_step(batch)
        frames += len(batch["clean"])
        for name, meter in meters.items():
            if name in out:
                meter.update(out[name], len(batch["clean"]))
        done = trainer.step - first
        if trainer.step % print_every == 0 or trainer.step == stop:
            elapsed = time.time() - start
            eta = elapsed / done * (stop - trainer.step)
            ssim_part = f" ssim {meters['ssim'].avg:.4f}" if meters["ssim"].count else ""
            logger.info("restorer: step [%d/%d] eta %s lr %.3e loss %.4f (%.4f) l1 %.4f%s grad norm %.3f "
                        "frames/s %.1f mem %.0f MiB", trainer.step, total_steps, format_seconds(eta), out["lr"],
                        out["loss"], meters["loss"].avg, meters["l1"].avg, ssim_part, out["grad_norm"],
                        frames / max(elapsed, 1e-9), memory_mib(trainer.device))
        if (save_every and trainer.step % save_every == 0) or trainer.step == stop:
            save()
            saved = trainer.step
    if saved != trainer.step:  # the last batches were unreadable: the run ends short of ``stop``
        save()


@torch.no_grad()
def evaluate_restoration(model: nn.Module, pairs: FramePairs, level: int, *, batch_size: int, num_workers: int,
                         device: torch.device, precision: str = "fp32", nsr: float = WIENER_NSR,
                         iterations: int = RL_ITERATIONS, keep: int = 0) -> tuple[dict, dict[str, torch.Tensor]]:
    """PSNR and SSIM against the clean frames of the sealed frames, Wiener, Richardson-Lucy and the
    network, on every frame of ``pairs`` (every output rounded to the uint8 grid first).

    Args:
        model: the restoration network (on ``device``).
        pairs: held-out pairs at ``level``.
        level: their film level (the PSF of the deconvolutions).
        batch_size: videos per batch.
        num_workers: data-loader workers.
        device: where everything runs.
        precision: autocast of the network.
        nsr: Wiener noise-to-signal ratio.
        iterations: Richardson-Lucy iterations.
        keep: frames kept for a picture (the first frame of ``keep`` videos spread over the set).

    Returns:
        ``(metrics, kept)``: metrics ``{method: {"psnr": dB, "ssim": ...}, "frames": M, "videos": V}``
        averaged over frames; kept ``{"clean" | method: [keep, 3, h, w] float}`` on the CPU.
    """
    model.eval()
    loader = DataLoader(pairs, batch_size=batch_size, collate_fn=collate_pairs, num_workers=num_workers,
                        worker_init_fn=worker_init if num_workers else None)
    sums = {method: {"psnr": 0.0, "ssim": 0.0} for method in METHODS}
    kept: dict[str, list[torch.Tensor]] = {name: [] for name in ("clean",) + METHODS}
    count = videos = 0
    shown = torch.from_numpy(np.linspace(0, len(pairs) - 1, keep).round().astype(np.int64))
    start = time.time()
    for batch in loader:
        clean, sealed = to_unit(batch["clean"], device), to_unit(batch["sealed"], device)
        if not len(clean):
            continue
        with autocast_context(precision, device):
            learned = model(sealed)
        outputs = {"sealed": sealed,
                   "wiener": quantize(restore_frames(sealed, "wiener", level, nsr=nsr)),
                   "richardson_lucy": quantize(restore_frames(sealed, "richardson_lucy", level, iterations=iterations)),
                   "learned": quantize(learned.float())}
        for method, out in outputs.items():
            sums[method]["psnr"] += float(psnr(out, clean).sum())
            sums[method]["ssim"] += float(ssim(out, clean).sum())
        first = torch.ones_like(batch["video"], dtype=torch.bool)
        first[1:] = batch["video"][1:] != batch["video"][:-1]  # the first frame of every video
        take = (first & torch.isin(batch["video"], shown)).nonzero().flatten().to(device)
        for name, frames in {"clean": clean, **outputs}.items():
            kept[name] += list(frames[take].cpu())
        count += len(clean)
        videos += int(first.sum())
    if not count:
        raise UserError("no held-out frame could be read; check the data folder")
    logger.info("level %d: %d held-out frames of %d videos scored (%.1f s)", level, count, videos, time.time() - start)
    metrics = {method: {key: value / count for key, value in parts.items()} for method, parts in sums.items()}
    return {**metrics, "frames": count, "videos": videos}, {name: torch.stack(v) for name, v in kept.items() if v}
