"""The training loop (accumulation, AMP, DDP, non-finite handling) and the experiment runner that
wires data, model, optimizer, checkpoints and evaluation together."""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sized

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from yacs.config import CfgNode

from datasets import build_loaders, build_mixup, to_device
from datasets.mixup import MixDraw, Mixup
from models import build_model
from trainers.checkpoint import (BEST_NAME, LAST_NAME, CheckpointError, FORMAT_VERSION,
                                 epoch_checkpoint_name, find_latest_checkpoint, load_checkpoint,
                                 prune_temporaries, save_checkpoint)
from trainers.distributed import DistInfo, all_gather_objects, barrier, broadcast_object
from trainers.evaluate import evaluate, format_metrics
from trainers.losses import PrivacyLoss
from trainers.optim import CosineWarmupScheduler, build_optimizer, trainable_parameter_table
from trainers.precision import autocast_context, build_grad_scaler
from utils.errors import UserError
from utils.misc import (AverageMeter, atomic_write, capture_rng_state, format_seconds,
                        restore_rng_state)

logger = logging.getLogger(__name__)

BYTES_PER_MIB = 2 ** 20
KIB_PER_MIB = 2 ** 10  # ru_maxrss is in KiB on Linux


class NonFiniteLossError(UserError):
    """Too many non-finite losses: training stops instead of corrupting the weights."""


@dataclass
class TrainCounters:
    """Counters saved with every checkpoint.

    Args:
        epoch: completed epochs.
        global_step: optimizer steps taken (the scheduler's clock).
        best_acc1: best validation top-1 so far (percent; -1 before the first evaluation).
        nonfinite: updates skipped because of a non-finite loss or gradient.
    """

    epoch: int = 0
    global_step: int = 0
    best_acc1: float = -1.0
    nonfinite: int = 0


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside ``torch.compile`` and DDP wrappers (or the model itself)."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, DistributedDataParallel) else model


def memory_mib(device: torch.device) -> float:
    """Peak memory of this process: allocated GPU memory on CUDA, resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / BYTES_PER_MIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB


@dataclass
class Trainer:
    """One epoch at a time: micro-batches accumulated into optimizer steps.

    The loss of each micro-batch is divided by the size of its accumulation window (the last
    window of an epoch may be shorter), so k micro-batches of b clips give the update of one batch
    of k*b clips. DDP synchronises gradients only on the last micro-batch of a window. The
    scheduler advances once per optimizer step.

    Args:
        model: the model, DDP-wrapped when distributed; ``model(frames, id_grad_scale=s, mix=m)``
            returns (action logits [B, K], identity logits [B, P]).
        optimizer: the optimizer of every trainable parameter.
        scheduler: per-step LR schedule.
        loss_fn: action + privacy loss.
        device: compute device.
        precision: fp32 | bf16 | fp16.
        scaler: grad scaler (fp16 only).
        mixup: draws each batch's mix (applied to the encoded clips inside the model) and soft
            targets, or None.
        accumulation_steps: micro-batches per optimizer step.
        clip_grad: max gradient norm (0 = off).
        max_nonfinite: skipped updates tolerated before stopping (non-fp16).
        head_optimizer: adversarial alternation: optimizer of the identity head alone.
        head_steps: extra identity-head updates per optimizer step (``TRAIN.ADV_STEPS - 1``).
        world_size: ranks (for the global clips/s).
        print_freq: progress line every N optimizer steps.
        writer: TensorBoard writer (rank 0) or None.
        counters: the counters, updated in place.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: CosineWarmupScheduler
    loss_fn: PrivacyLoss
    device: torch.device
    precision: str = "fp32"
    scaler: torch.amp.GradScaler | None = None
    mixup: Mixup | None = None
    accumulation_steps: int = 1
    clip_grad: float = 0.0
    max_nonfinite: int = 10
    head_optimizer: torch.optim.Optimizer | None = None
    head_steps: int = 0
    world_size: int = 1
    print_freq: int = 20
    writer: Any = None
    counters: TrainCounters = field(default_factory=TrainCounters)

    def steps_per_epoch(self, num_batches: int) -> int:
        """Optimizer steps of an epoch of ``num_batches`` micro-batches (last window may be short)."""
        return math.ceil(num_batches / self.accumulation_steps)

    def _sync_context(self, last_in_window: bool) -> contextlib.AbstractContextManager:
        if isinstance(self.model, DistributedDataParallel) and not last_in_window:
            return self.model.no_sync()
        return contextlib.nullcontext()

    def _inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, MixDraw | None, torch.Tensor, torch.Tensor]:
        """(frames for the input encoder, the batch's mix or None, action target, identity target)."""
        batch = to_device(batch, self.device)
        frames = batch["frames"]  # uint8 [B, T, F, C, S, S]
        label, identity = batch["label"], batch["identity"]
        if self.mixup is None:
            return frames, None, label, identity
        mix = self.mixup.draw(frames.shape[0], frames.shape[-2], frames.shape[-1], self.device)
        return (frames, mix) + mix.targets(label, identity)  # soft targets [B, K], [B, P]

    def _backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def _grad_norm(self, optimizer: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
        """Unscales (fp16), clips when asked and returns the global gradient norm (identical on all
        ranks after DDP's all-reduce, so every rank takes the same skip decision)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return torch.zeros(())
        if max_norm > 0:
            return torch.nn.utils.clip_grad_norm_(params, max_norm)
        return torch.nn.utils.get_total_norm([p.grad for p in params])

    def _apply_update(self, optimizer: torch.optim.Optimizer, grad_norm: torch.Tensor) -> bool:
        """Steps ``optimizer``; returns False when the update was skipped."""
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(optimizer)  # skips by itself on inf/nan gradients
            self.scaler.update()
            return self.scaler.get_scale() >= scale
        if not bool(torch.isfinite(grad_norm)):
            return False
        optimizer.step()
        return True

    def _head_updates(self, frames: torch.Tensor, mix: MixDraw | None, identity_target: torch.Tensor) -> None:
        """Adversarial alternation: extra identity-head updates on the last micro-batch, with no
        gradient into the encoder (``id_grad_scale`` 0)."""
        for _ in range(self.head_steps):
            with autocast_context(self.precision, self.device):
                action_logits, identity_logits = self.model(frames, id_grad_scale=0.0, mix=mix)
            loss = self.loss_fn.identity_only(identity_logits, identity_target) + 0.0 * action_logits.sum()
            self._backward(loss)
            grad_norm = self._grad_norm(self.head_optimizer, 0.0)
            self._apply_update(self.head_optimizer, grad_norm)
            self.optimizer.zero_grad(set_to_none=True)
            self.head_optimizer.zero_grad(set_to_none=True)

    def train_one_epoch(self, loader: Iterable[dict[str, torch.Tensor]] | Sized, epoch: int,
                        num_epochs: int) -> dict[str, float]:
        """Trains one epoch.

        Args:
            loader: training batches (``clips`` [B, T, 3, H, W], ``label`` [B], ``identity`` [B]).
            epoch: 0-based epoch index (for logs).
            num_epochs: total epochs (for logs).

        Returns:
            Average undivided losses of the epoch and the number of skipped updates.

        Raises:
            NonFiniteLossError: more than ``max_nonfinite`` skipped updates in the run.
        """
        self.model.train()
        num_batches = len(loader)
        steps = self.steps_per_epoch(num_batches)
        meters = {name: AverageMeter() for name in ("loss", "action", "identity")}
        num_bad = 0
        clips_seen = 0
        start = time.time()
        self.optimizer.zero_grad(set_to_none=True)
        window_nonfinite = False
        for index, batch in enumerate(loader):
            window_start = index - index % self.accumulation_steps
            window = min(self.accumulation_steps, num_batches - window_start)
            last_in_window = index - window_start == window - 1
            frames, mix, action_target, identity_target = self._inputs(batch)
            with self._sync_context(last_in_window):
                with autocast_context(self.precision, self.device):
                    action_logits, identity_logits = self.model(frames, id_grad_scale=self.loss_fn.id_grad_scale,
                                                                mix=mix)
                losses = self.loss_fn(action_logits, identity_logits, action_target, identity_target)
                self._backward(losses["loss"] / window)
            batch_size = frames.shape[0]
            clips_seen += batch_size
            num_bad += int(batch["num_bad"].sum()) if "num_bad" in batch else 0
            loss_value = float(losses["loss"].detach())
            if not math.isfinite(loss_value):
                window_nonfinite = True
            else:
                for name in meters:
                    meters[name].update(float(losses[name].detach() if name != "loss" else loss_value), batch_size)
            if not last_in_window:
                continue
            step_in_epoch = index // self.accumulation_steps + 1
            grad_norm = self._grad_norm(self.optimizer, self.clip_grad)
            updated = self._apply_update(self.optimizer, grad_norm)
            self.optimizer.zero_grad(set_to_none=True)
            self._handle_skip(updated, window_nonfinite, epoch)
            window_nonfinite = False
            if updated and self.head_steps and self.head_optimizer is not None:
                self._head_updates(frames, mix, identity_target)
            self.scheduler.step()
            self.counters.global_step += 1
            elapsed = time.time() - start
            rate = clips_seen * self.world_size / max(elapsed, 1e-9)
            lr = self.scheduler.get_last_lr()[0]
            self._log_step(meters, lr, float(grad_norm), rate)
            if step_in_epoch % self.print_freq == 0 or step_in_epoch == steps:
                eta = elapsed / step_in_epoch * (steps - step_in_epoch)
                logger.info(
                    "Train: [%d/%d][%d/%d] eta %s lr %.3e loss %.4f (%.4f) action %.4f identity %.4f "
                    "grad norm %.3f clips/s %.1f mem %.0f MiB", epoch + 1, num_epochs, step_in_epoch,
                    steps, format_seconds(eta), lr, meters["loss"].val, meters["loss"].avg,
                    meters["action"].avg, meters["identity"].avg, float(grad_norm), rate,
                    memory_mib(self.device))
        if num_bad:
            logger.warning("epoch %d: %d unreadable samples skipped (DATA.SKIP_BAD)", epoch + 1, num_bad)
        return {"loss": meters["loss"].avg, "action": meters["action"].avg,
                "identity": meters["identity"].avg, "num_bad": num_bad,
                "time": time.time() - start}

    def _handle_skip(self, updated: bool, window_nonfinite: bool, epoch: int) -> None:
        step = self.counters.global_step + 1
        if window_nonfinite:
            logger.warning("non-finite loss at optimizer step %d (epoch %d)", step, epoch + 1)
        if updated:
            return
        if self.scaler is not None:
            logger.info("fp16 grad scaler skipped step %d (inf/nan gradients), scale now %.1f",
                        step, self.scaler.get_scale())
            return
        self.counters.nonfinite += 1
        logger.warning("non-finite gradient at optimizer step %d (epoch %d): update skipped (%d of %d tolerated)",
                       step, epoch + 1, self.counters.nonfinite, self.max_nonfinite)
        if self.counters.nonfinite > self.max_nonfinite:
            raise NonFiniteLossError(
                f"loss or gradients non-finite {self.counters.nonfinite} times (last at optimizer step {step}); "
                "lower TRAIN.LR, set TRAIN.CLIP_GRAD or TRAIN.PRECISION fp32, or raise TRAIN.MAX_NONFINITE")

    def _log_step(self, meters: dict[str, AverageMeter], lr: float, grad_norm: float, rate: float) -> None:
        if self.writer is None:
            return
        step = self.counters.global_step
        for name, meter in meters.items():
            self.writer.add_scalar(f"train/{name}_loss", meter.val, step)
        self.writer.add_scalar("train/lr", lr, step)
        self.writer.add_scalar("train/grad_norm", grad_norm, step)
        self.writer.add_scalar("train/clips_per_s", rate, step)
        self.writer.add_scalar("train/memory_mib", memory_mib(self.device), step)


# ----------------------------------------------------------------------------- state
def training_state(trainer: Trainer, *, cfg: CfgNode, info: DistInfo, rng_states: list[dict[str, Any]],
                   mixup_state: str | None) -> dict[str, Any]:
    """The checkpoint dict: everything needed to continue the run where it stopped."""
    return {
        "format_version": FORMAT_VERSION,
        "model": unwrap(trainer.model).state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "head_optimizer": trainer.head_optimizer.state_dict() if trainer.head_optimizer is not None else None,
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
        "epoch": trainer.counters.epoch,
        "global_step": trainer.counters.global_step,
        "best_acc1": trainer.counters.best_acc1,
        "nonfinite": trainer.counters.nonfinite,
        "rng": rng_states,
        "mixup_rng": mixup_state,
        "sampler": {"epoch": trainer.counters.epoch, "seed": cfg.SEED},
        "world_size": info.world_size,
        "config": cfg.dump(),
    }


def restore_training_state(trainer: Trainer, state: dict[str, Any], info: DistInfo,
                           mixup_rng: np.random.Generator | None, path: str = "checkpoint") -> None:
    """Loads a checkpoint dict written by :func:`training_state` into ``trainer`` (every rank)."""
    _load_weights(unwrap(trainer.model), state["model"], path)
    trainer.optimizer.load_state_dict(state["optimizer"])
    if trainer.head_optimizer is not None and state.get("head_optimizer"):
        trainer.head_optimizer.load_state_dict(state["head_optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    if trainer.scaler is not None and state.get("scaler"):
        trainer.scaler.load_state_dict(state["scaler"])
    trainer.counters = TrainCounters(epoch=int(state["epoch"]), global_step=int(state["global_step"]),
                                     best_acc1=float(state["best_acc1"]), nonfinite=int(state["nonfinite"]))
    if len(state["rng"]) == info.world_size:
        restore_rng_state(state["rng"][info.rank])
    else:
        logger.warning("checkpoint written by %d ranks, resumed on %d: RNG streams restart",
                       len(state["rng"]), info.world_size)
    if mixup_rng is not None and state.get("mixup_rng"):
        mixup_rng.bit_generator.state = json.loads(state["mixup_rng"])


def _load_weights(model: nn.Module, weights: dict[str, torch.Tensor], path: str) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"checkpoint {path} does not fit the model of this config: {first}") from None


def resolve_resume(cfg: CfgNode, info: DistInfo) -> str:
    """The checkpoint to resume from: ``MODEL.RESUME`` as given, or for ``auto`` (or
    ``TRAIN.AUTO_RESUME``) the newest complete checkpoint in OUTPUT, chosen by rank 0 and
    broadcast so that every rank loads the same file. ``""`` = start fresh."""
    resume = cfg.MODEL.RESUME
    if resume != "auto" and not (resume == "" and cfg.TRAIN.AUTO_RESUME):
        return resume
    choice = find_latest_checkpoint(cfg.OUTPUT) if info.is_main else None
    choice = broadcast_object(choice, info) or ""
    if choice:
        logger.info("auto resume: %s", choice)
    else:
        logger.info("auto resume: no checkpoint in %s, starting fresh", cfg.OUTPUT)
    return choice


# ----------------------------------------------------------------------------- runner
def _copy_atomic(src: str, dst: str) -> None:
    with open(src, "rb") as source:
        atomic_write(dst, lambda f: shutil.copyfileobj(source, f), binary=True)


def _build_head_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer | None:
    if cfg.TRAIN.PRIVACY_LOSS != "adversarial" or cfg.TRAIN.ADV_STEPS <= 1:
        return None
    head = model.id_head
    lr = cfg.TRAIN.LR * cfg.TRAIN.NEW_MODULE_LR_MULT
    return torch.optim.AdamW(head.parameters(), lr=lr, betas=tuple(cfg.TRAIN.BETAS), eps=cfg.TRAIN.EPS,
                             weight_decay=cfg.TRAIN.WEIGHT_DECAY)


def run(cfg: CfgNode, info: DistInfo) -> dict[str, Any]:
    """Trains and evaluates (or only evaluates) the experiment of ``cfg``.

    Args:
        cfg: the frozen experiment config.
        info: this process's distributed info.

    Returns:
        The last evaluation metrics plus ``wall_time`` and ``num_classes``.
    """
    wall_start = time.time()
    loaders = build_loaders(cfg, rank=info.rank, world_size=info.world_size)
    model = build_model(cfg, loaders.class_names).to(info.device)
    logger.info("trainable parameters per module:\n%s", trainable_parameter_table(model))
    optimizer = build_optimizer(model, lr=cfg.TRAIN.LR, new_module_lr_mult=cfg.TRAIN.NEW_MODULE_LR_MULT,
                                weight_decay=cfg.TRAIN.WEIGHT_DECAY, betas=tuple(cfg.TRAIN.BETAS),
                                eps=cfg.TRAIN.EPS)
    steps_per_epoch = math.ceil(len(loaders.train) / cfg.TRAIN.ACCUMULATION_STEPS)
    scheduler = CosineWarmupScheduler(optimizer, total_steps=cfg.TRAIN.EPOCHS * steps_per_epoch,
                                      warmup_steps=cfg.TRAIN.WARMUP_EPOCHS * steps_per_epoch,
                                      min_lr_ratio=cfg.TRAIN.MIN_LR_RATIO,
                                      warmup_lr_ratio=cfg.TRAIN.WARMUP_LR_RATIO)
    if cfg.TRAIN.OPT_LEVEL:
        logger.info("TRAIN.OPT_LEVEL %s (apex) mapped to torch.amp precision %s", cfg.TRAIN.OPT_LEVEL,
                    cfg.TRAIN.PRECISION)
    mixup_rng = np.random.default_rng([cfg.SEED, info.rank])
    loss_fn = PrivacyLoss(mode=cfg.TRAIN.PRIVACY_LOSS, weight=cfg.TRAIN.PRIVACY_WEIGHT,
                          label_smoothing=cfg.AUG.LABEL_SMOOTH)
    trainer = Trainer(model=model, optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn,
                      device=info.device, precision=cfg.TRAIN.PRECISION,
                      scaler=build_grad_scaler(cfg.TRAIN.PRECISION, info.device),
                      mixup=build_mixup(cfg, mixup_rng), accumulation_steps=cfg.TRAIN.ACCUMULATION_STEPS,
                      clip_grad=cfg.TRAIN.CLIP_GRAD, max_nonfinite=cfg.TRAIN.MAX_NONFINITE,
                      head_optimizer=_build_head_optimizer(cfg, model), head_steps=cfg.TRAIN.ADV_STEPS - 1,
                      world_size=info.world_size, print_freq=cfg.PRINT_FREQ)

    resume = resolve_resume(cfg, info)
    if resume:
        state = load_checkpoint(resume, allow_pickle=cfg.MODEL.ALLOW_PICKLE)
        if state.get("original"):
            _load_weights(model, state["model"], resume)
            logger.info("loaded original-release weights from %s (optimizer and schedule start fresh)", resume)
        else:
            restore_training_state(trainer, state, info, mixup_rng, resume)
            logger.info("resumed from %s at epoch %d, step %d", resume, trainer.counters.epoch,
                        trainer.counters.global_step)
    if info.distributed:
        trainer.model = DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None,
            broadcast_buffers=False)
    if cfg.TRAIN.COMPILE:
        trainer.model = torch.compile(trainer.model)

    def run_eval(epoch: int) -> dict[str, Any]:
        metrics = evaluate(trainer.model, loaders.val, info=info, precision=cfg.TRAIN.PRECISION,
                           num_classes=len(loaders.class_names), train_identities=loaders.train_identities,
                           epoch=epoch, class_names=loaders.class_names, output_dir=cfg.OUTPUT)
        logger.info("Test (epoch %d): %s", epoch, format_metrics(metrics))
        return metrics

    if cfg.TEST.ONLY_TEST:
        metrics = run_eval(trainer.counters.epoch)
        return {**metrics, "wall_time": time.time() - wall_start, "num_classes": len(loaders.class_names)}

    writer = None
    if info.is_main:
        prune_temporaries(cfg.OUTPUT)
        writer = SummaryWriter(cfg.OUTPUT)
    trainer.writer = writer
    metrics: dict[str, Any] = {}
    try:
        for epoch in range(trainer.counters.epoch, cfg.TRAIN.EPOCHS):
            loaders.train_sampler.set_epoch(epoch)
            stats = trainer.train_one_epoch(loaders.train, epoch, cfg.TRAIN.EPOCHS)
            trainer.counters.epoch = done = epoch + 1
            logger.info("epoch %d done in %s: loss %.4f", done, format_seconds(stats["time"]), stats["loss"])
            is_best = False
            if done % cfg.EVAL_FREQ == 0 or done == cfg.TRAIN.EPOCHS:
                metrics = run_eval(done)
                is_best = metrics["acc1"] is not None and metrics["acc1"] > trainer.counters.best_acc1
                if is_best:
                    trainer.counters.best_acc1 = metrics["acc1"]
                if writer is not None:
                    for key in ("acc1", "acc5", "mean_class_acc", "id_acc1", "id_acc5"):
                        if metrics[key] is not None:
                            writer.add_scalar(f"val/{key}", metrics[key], done)
            _save(trainer, cfg, info, mixup_rng if trainer.mixup is not None else None, is_best)
    finally:
        if writer is not None:
            writer.close()
    if not metrics:
        metrics = run_eval(trainer.counters.epoch)
    return {**metrics, "best_acc1": trainer.counters.best_acc1, "wall_time": time.time() - wall_start,
            "num_classes": len(loaders.class_names)}


def _save(trainer: Trainer, cfg: CfgNode, info: DistInfo, mixup_rng: np.random.Generator | None,
          is_best: bool) -> None:
    """Writes last.pth (and the periodic and best checkpoints) on rank 0, with every rank's RNG."""
    rng_states = all_gather_objects(capture_rng_state(), info)
    if info.is_main:
        mixup_state = json.dumps(mixup_rng.bit_generator.state) if mixup_rng is not None else None
        state = training_state(trainer, cfg=cfg, info=info, rng_states=rng_states, mixup_state=mixup_state)
        last = os.path.join(cfg.OUTPUT, LAST_NAME)
        save_checkpoint(state, last)
        epoch = trainer.counters.epoch
        if epoch % cfg.SAVE_FREQ == 0 or epoch == cfg.TRAIN.EPOCHS:
            _copy_atomic(last, os.path.join(cfg.OUTPUT, epoch_checkpoint_name(epoch)))
        if is_best:
            _copy_atomic(last, os.path.join(cfg.OUTPUT, BEST_NAME))
        logger.info("saved %s (epoch %d)", last, epoch)
    barrier(info)


def print_summary(metrics: dict[str, Any], file: Any = None) -> None:
    """The short summary printed at the end of a run: action top-1 beside chance, identity top-1, time."""
    file = file if file is not None else sys.stdout
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}%"

    chance = 100.0 / metrics["num_classes"]
    print(f"action top-1 {pct(metrics['acc1'])} (chance {chance:.1f}%), top-5 {pct(metrics['acc5'])}, "
          f"mean class {pct(metrics['mean_class_acc'])}", file=file)
    print(f"identity top-1 {pct(metrics['id_acc1'])} over {metrics['id_videos']} of {metrics['num_videos']} "
          f"videos whose identity occurs in training ({metrics['num_views']} views per video)", file=file)
    print(f"wall time {format_seconds(metrics['wall_time'])}", file=file)
