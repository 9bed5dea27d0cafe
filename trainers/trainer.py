"""The training step and loop: accumulation, AMP, DDP, non-finite handling, the adversarial
privacy-head alternation, and the trainer's checkpointed state."""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sized

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from datasets.device import to_device
from datasets.mixup import MixDraw, Mixup
from trainers.checkpoint import CheckpointError, load_model_weights
from trainers.distributed import all_reduce_mean_, unwrap
from trainers.losses import PrivacyLoss, with_aux_losses
from trainers.nonfinite import SkipRule
from trainers.optim import CosineWarmupScheduler
from trainers.precision import autocast_context
from utils.misc import AverageMeter, format_seconds, memory_mib

logger = logging.getLogger(__name__)

Batch = Mapping[str, torch.Tensor]
Targets = dict[str, torch.Tensor]  # privacy head -> labels [B] or soft targets [B, C_h]


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


@dataclass
class StepResult:
    """What one optimizer step reports.

    Args:
        losses: ``loss``, ``action`` and one entry per privacy head, undivided, averaged over the
            clips of the window's micro-batches whose loss was finite (empty when none was).
        finite_clips: clips behind ``losses`` (their weight in an epoch average).
        clips: clips of the window (this rank).
        grad_norm: global gradient norm before clipping.
        updated: whether the optimizer stepped (False = skipped on non-finite gradients).
        num_bad: unreadable samples the loader replaced in the window.
    """

    losses: dict[str, float]
    finite_clips: int
    clips: int
    grad_norm: float
    updated: bool
    num_bad: int


@dataclass
class Trainer:
    """Optimizer steps over windows of micro-batches; :meth:`train_step` is the whole update.

    The loss of each micro-batch is divided by the size of its window (the last window of an
    epoch may be shorter), so k micro-batches of b clips give the update of one batch of k*b
    clips. DDP synchronises gradients only on the last micro-batch of a window. The scheduler
    advances once per optimizer step.

    Args:
        model: the model, DDP-wrapped when distributed; ``model(frames, privacy_grad_scale=s,
            mix=m)`` returns (action logits [B, K], privacy logits {head: [B, C_h]}) and with
            ``return_video=True`` also the normalised video feature [B, E] the heads consumed.
        optimizer: the optimizer of every trainable parameter.
        scheduler: per-step LR schedule (of ``optimizer`` and ``head_optimizer``).
        loss_fn: action + privacy loss.
        device: compute device.
        precision: fp32 | bf16 | fp16.
        scaler: grad scaler (fp16 only).
        mixup: draws each batch's mix (applied to the encoded clips inside the model) and soft
            targets, or None.
        accumulation_steps: micro-batches per optimizer step.
        clip_grad: max gradient norm (0 = off).
        max_nonfinite: counted skipped updates, and skipped updates in a row, tolerated before
            stopping (:mod:`trainers.nonfinite`).
        head_optimizer: adversarial alternation: optimizer of the privacy heads alone.
        head_steps: extra privacy-head updates per optimizer step (``TRAIN.ADV_STEPS - 1``).
        world_size: ranks (global clips/s; the extra head updates average their gradients).
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

    def __post_init__(self) -> None:
        self.skip_rule = SkipRule(self.max_nonfinite)
        # the input encoder's auxiliary losses (STPrivacy's keep ratio) are logged after the heads
        self.loss_names = ("loss", "action") + self.loss_fn.heads + tuple(getattr(unwrap(self.model), "aux_loss_names", ()))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything of the trainer a checkpoint holds (plain types and tensors).

        Keys: ``model``, ``optimizer``, ``head_optimizer``, ``scheduler``, ``scaler`` (None when
        absent), the :class:`TrainCounters` fields ``epoch``, ``global_step``, ``best_acc1``,
        ``nonfinite``, and ``mixup_rng`` (the mixup generator state as JSON, or None).
        """
        return {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "head_optimizer": self.head_optimizer.state_dict() if self.head_optimizer is not None else None,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            **asdict(self.counters),
            "mixup_rng": json.dumps(self.mixup.rng.bit_generator.state) if self.mixup is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any], path: str = "checkpoint") -> None:
        """Restores what :meth:`state_dict` returned (other keys of a checkpoint are ignored).

        An entry the checkpoint lacks for a component of this run (head optimizer, scaler, mixup
        generator: the config changed) leaves that component fresh, with a warning.

        Args:
            state: a checkpoint dict.
            path: the checkpoint file (for messages).

        Raises:
            CheckpointError: the weights do not fit the model.
        """
        load_model_weights(unwrap(self.model), state["model"], path)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError:  # other parameter groups: another MODEL.FREEZE or trained parts
            raise CheckpointError(f"checkpoint {path} was trained with other parameter groups (another "
                                  "MODEL.FREEZE): resume with the MODEL.FREEZE of its config, or start "
                                  f"a new run from its weights with --pretrained {path}") from None
        self.scheduler.load_state_dict(state["scheduler"])
        optional = {"head_optimizer": self.head_optimizer, "scaler": self.scaler, "mixup_rng": self.mixup}
        for key, component in optional.items():
            if component is not None and state.get(key) is None:
                logger.warning("checkpoint %s has no %s: it starts fresh", path, key)
        if self.head_optimizer is not None and state.get("head_optimizer") is not None:
            self.head_optimizer.load_state_dict(state["head_optimizer"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.mixup is not None and state.get("mixup_rng") is not None:
            self.mixup.rng.bit_generator.state = json.loads(state["mixup_rng"])
        self.counters = TrainCounters(epoch=int(state["epoch"]), global_step=int(state["global_step"]),
                                      best_acc1=float(state["best_acc1"]), nonfinite=int(state["nonfinite"]))

    # ------------------------------------------------------------------ one step
    def steps_per_epoch(self, num_batches: int) -> int:
        """Optimizer steps of an epoch of ``num_batches`` micro-batches (last window may be short)."""
        return math.ceil(num_batches / self.accumulation_steps)

    def _inputs(self, batch: Batch) -> tuple[torch.Tensor, MixDraw | None, torch.Tensor, Targets]:
        """A loader batch -> model inputs on the device: (frames for the input encoder, uint8
        [B, T, F, C, S, S]; the batch's mix or None; action target [B] or [B, K]; the privacy
        targets); mixup makes the targets soft."""
        batch = to_device(batch, self.device)
        frames, label = batch["frames"], batch["label"]
        privacy = {name: batch[name] for name in self.loss_fn.heads}
        if self.mixup is None:
            return frames, None, label, privacy
        mix = self.mixup.draw(frames.shape[0], frames.shape[-2], frames.shape[-1], self.device)
        return (frames, mix) + mix.targets(label, privacy)  # soft targets [B, K], {head: [B, C_h]}

    def _sync_context(self, last_in_window: bool) -> contextlib.AbstractContextManager:
        if isinstance(self.model, DistributedDataParallel) and not last_in_window:
            return self.model.no_sync()
        return contextlib.nullcontext()

    def _forward(self, frames: torch.Tensor, mix: MixDraw | None
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
        """(action logits, privacy logits, video feature or None without head updates)."""
        scale = self.loss_fn.privacy_grad_scale
        with autocast_context(self.precision, self.device):
            if self.head_steps > 0 and self.head_optimizer is not None:
                return self.model(frames, privacy_grad_scale=scale, mix=mix, return_video=True)
            action_logits, privacy_logits = self.model(frames, privacy_grad_scale=scale, mix=mix)
        return action_logits, privacy_logits, None

    def train_step(self, micro_batches: Iterable[Batch], window: int | None = None) -> StepResult:
        """One optimizer step over one accumulation window: forward and backward of each
        micro-batch (loss divided by ``window``), gradient norm and clipping, the update (or its
        skip on non-finite gradients), the extra privacy-head updates, the scheduler step.

        Micro-batches are drawn one at a time, so only one is on the device. A window of k
        micro-batches of b clips gives the update of one batch of k*b clips, the head updates
        included (they run on the whole window's features). A benchmark times one real optimizer
        step with ``trainer.train_step([batch])``.

        Args:
            micro_batches: loader batches (``frames`` for the input encoder or uncropped frames
                for :func:`~datasets.device.to_device`, ``label`` [B], one [B] per privacy head
                of the loss, optional ``num_bad``); the first
                ``window`` are used (an iterator advances by exactly that many).
            window: micro-batches of this step; None = ``len(micro_batches)``.

        Returns:
            The losses and norms of the step.

        Raises:
            NonFiniteLossError: see :mod:`trainers.nonfinite`.
            ValueError: fewer than ``window`` micro-batches.
        """
        if window is None:
            if not isinstance(micro_batches, Sized):
                raise ValueError("train_step needs window= for an iterator of micro-batches")
            window = len(micro_batches)
        sums = dict.fromkeys(self.loss_names, 0.0)
        clips_seen = finite_clips = num_bad = drawn = 0
        videos: list[torch.Tensor] = []
        head_targets: list[Targets] = []
        self.optimizer.zero_grad(set_to_none=True)
        for drawn, batch in enumerate(itertools.islice(micro_batches, window), start=1):
            frames, mix, action_target, privacy_targets = self._inputs(batch)
            with self._sync_context(last_in_window=drawn == window):
                action_logits, privacy_logits, video = self._forward(frames, mix)
                losses = with_aux_losses(self.loss_fn(action_logits, privacy_logits, action_target, privacy_targets),
                                         unwrap(self.model))
                self._backward(losses["loss"] / window)
            if video is not None:
                videos.append(video.detach())
                head_targets.append(privacy_targets)
            batch_size = frames.shape[0]
            clips_seen += batch_size
            num_bad += int(batch["num_bad"].sum()) if "num_bad" in batch else 0
            values = {name: float(losses[name].detach()) for name in self.loss_names}
            if math.isfinite(values["loss"]):
                finite_clips += batch_size
                for name in self.loss_names:
                    sums[name] += values[name] * batch_size
        if drawn != window:
            raise ValueError(f"train_step got {drawn} micro-batches for a window of {window}")
        grad_norm = self._grad_norm(self.optimizer, self.clip_grad)
        updated = self._apply_update(self.optimizer, grad_norm)
        self.optimizer.zero_grad(set_to_none=True)
        self.counters.nonfinite = self.skip_rule.after_update(
            self.counters.nonfinite, step=self.counters.global_step + 1, epoch=self.counters.epoch + 1,
            updated=updated, loss_nonfinite=finite_clips < clips_seen,
            scaler_scale=self.scaler.get_scale() if self.scaler is not None else None)
        if updated and videos:
            self._head_updates(torch.cat(videos), {name: torch.cat([t[name] for t in head_targets])
                                                   for name in self.loss_fn.heads})
        self.scheduler.step()
        self.counters.global_step += 1
        losses_avg = {name: total / finite_clips for name, total in sums.items()} if finite_clips else {}
        return StepResult(losses=losses_avg, finite_clips=finite_clips, clips=clips_seen,
                          grad_norm=float(grad_norm), updated=updated, num_bad=num_bad)

    def _backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def _grad_norm(self, optimizer: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
        """Unscales (fp16), clips when asked and returns the global gradient norm (identical on all
        ranks after the all-reduce, so every rank takes the same skip decision)."""
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

    def _head_updates(self, video: torch.Tensor, targets: Targets) -> None:
        """Adversarial alternation: ``head_steps`` updates of the privacy heads alone on the
        detached video features of the step's window, as the forward computed them before the
        encoder's update (no encoder forward, no DDP). Each rank's head gradients are averaged
        over the ranks, so the heads stay identical.

        Args:
            video: detached normalised video features of the window [N, E].
            targets: their privacy targets, head -> [N] or [N, C_h].
        """
        heads = unwrap(self.model).heads
        params = [p for group in self.head_optimizer.param_groups for p in group["params"]]
        for _ in range(self.head_steps):
            with autocast_context(self.precision, self.device):
                logits = heads(video)  # {head: [N, C_h]}
            self._backward(self.loss_fn.heads_only(logits, targets))
            all_reduce_mean_([p.grad for p in params if p.grad is not None], self.world_size)
            grad_norm = self._grad_norm(self.head_optimizer, 0.0)
            if not self._apply_update(self.head_optimizer, grad_norm):
                logger.info("privacy-head update skipped at step %d (non-finite gradients)",
                            self.counters.global_step + 1)
            self.head_optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ one epoch
    def train_one_epoch(self, loader: Iterable[Batch] | Sized, epoch: int, num_epochs: int) -> dict[str, float]:
        """Trains one epoch: :meth:`train_step` over consecutive windows of ``accumulation_steps``
        micro-batches (the last window takes what remains).

        Args:
            loader: training batches (see :meth:`train_step`).
            epoch: 0-based epoch index (for logs).
            num_epochs: total epochs (for logs).

        Returns:
            Average undivided losses of the epoch, the number of unreadable samples and the time.

        Raises:
            NonFiniteLossError: see :mod:`trainers.nonfinite`.
        """
        self.model.train()
        num_batches = len(loader)
        steps = self.steps_per_epoch(num_batches)
        meters = {name: AverageMeter() for name in self.loss_names}
        num_bad = clips_seen = 0
        start = time.time()
        batches = iter(loader)
        for step_in_epoch in range(1, steps + 1):
            window = min(self.accumulation_steps, num_batches - (step_in_epoch - 1) * self.accumulation_steps)
            result = self.train_step(batches, window)
            clips_seen += result.clips
            num_bad += result.num_bad
            for name, value in result.losses.items():
                meters[name].update(value, result.finite_clips)
            elapsed = time.time() - start
            rate = clips_seen * self.world_size / max(elapsed, 1e-9)
            lr = self.scheduler.get_last_lr()[0]
            self._log_step(meters, lr, result.grad_norm, rate)
            if step_in_epoch % self.print_freq == 0 or step_in_epoch == steps:
                eta = elapsed / step_in_epoch * (steps - step_in_epoch)
                parts = " ".join(f"{name} {meters[name].avg:.4f}" for name in self.loss_names[1:])
                logger.info(
                    "Train: [%d/%d][%d/%d] eta %s lr %.3e loss %.4f (%.4f) %s grad norm %.3f clips/s "
                    "%.1f mem %.0f MiB", epoch + 1, num_epochs, step_in_epoch, steps, format_seconds(eta),
                    lr, meters["loss"].val, meters["loss"].avg, parts, result.grad_norm, rate,
                    memory_mib(self.device))
        if num_bad:
            logger.warning("epoch %d: %d unreadable samples skipped (DATA.SKIP_BAD)", epoch + 1, num_bad)
        # an epoch without one finite loss reports NaN, not the meters' empty average
        averages = {name: meter.avg if meter.count else math.nan for name, meter in meters.items()}
        return {**averages, "num_bad": num_bad, "time": time.time() - start}

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
