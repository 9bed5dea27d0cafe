"""The experiment runner: builds data, model, optimizers, schedule and :class:`Trainer` from the
config, chooses the resume file, trains with the evaluation and saving schedule, and prints the
summary."""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from typing import Any, Callable, TextIO

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from yacs.config import CfgNode

from datasets import build_loaders, build_mixup
from datasets.loader import Loaders
from models import RANDOM_INIT, build_model
from trainers.checkpoint import (CONFIG_NAME, FORMAT_VERSION, CheckpointSaver, find_latest_checkpoint, load_checkpoint,
                                 load_model_weights, prune_temporaries)
from trainers.distributed import DistInfo, all_gather_objects, barrier, broadcast_object
from trainers.evaluate import TEST_ONLY_PREFIX, evaluate, format_metrics
from trainers.losses import PrivacyLoss
from trainers.metrics import PERCENT
from trainers.optim import CosineWarmupScheduler, build_optimizer, trainable_parameter_table
from trainers.precision import build_grad_scaler
from trainers.trainer import Trainer
from utils.errors import UserError
from utils.misc import atomic_write_text, capture_rng_state, format_seconds, restore_rng_state

logger = logging.getLogger(__name__)

VAL_METRICS = ("acc1", "acc5", "mean_class_acc")  # written to TensorBoard, with each head's acc1
Evaluator = Callable[[int], dict[str, Any]]


def build_head_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer | None:
    """The privacy heads' own optimizer for the adversarial alternation (``TRAIN.PRIVACY_LOSS
    adversarial`` with ``TRAIN.ADV_STEPS`` > 1), or None (also when the heads are frozen). The
    heads are new modules: their LR is ``TRAIN.LR * TRAIN.NEW_MODULE_LR_MULT``, weight decay on
    their matrices only, as in the main optimizer.

    Args:
        cfg: the experiment config.
        model: the unwrapped model (with ``heads``).
    """
    trained = any(p.requires_grad for p in model.heads.parameters())
    if cfg.TRAIN.PRIVACY_LOSS != "adversarial" or cfg.TRAIN.ADV_STEPS <= 1 or not trained:
        return None
    return build_optimizer(model.heads, lr=cfg.TRAIN.LR * cfg.TRAIN.NEW_MODULE_LR_MULT, new_module_lr_mult=1.0,
                           weight_decay=cfg.TRAIN.WEIGHT_DECAY, betas=tuple(cfg.TRAIN.BETAS), eps=cfg.TRAIN.EPS)


def build_trainer(cfg: CfgNode, info: DistInfo, model: nn.Module, num_batches: int) -> Trainer:
    """The :class:`Trainer` of ``cfg`` for ``model`` (unwrapped, on ``info.device``).

    Args:
        cfg: the experiment config.
        info: this process's distributed info.
        model: the model.
        num_batches: micro-batches per epoch on this rank (sets the schedule's length).
    """
    optimizer = build_optimizer(model, lr=cfg.TRAIN.LR, new_module_lr_mult=cfg.TRAIN.NEW_MODULE_LR_MULT,
                                weight_decay=cfg.TRAIN.WEIGHT_DECAY, betas=tuple(cfg.TRAIN.BETAS),
                                eps=cfg.TRAIN.EPS)
    head_optimizer = build_head_optimizer(cfg, model)
    steps_per_epoch = math.ceil(num_batches / cfg.TRAIN.ACCUMULATION_STEPS)
    scheduler = CosineWarmupScheduler([optimizer] + ([head_optimizer] if head_optimizer is not None else []),
                                      total_steps=cfg.TRAIN.EPOCHS * steps_per_epoch,
                                      warmup_steps=cfg.TRAIN.WARMUP_EPOCHS * steps_per_epoch,
                                      min_lr_ratio=cfg.TRAIN.MIN_LR_RATIO,
                                      warmup_lr_ratio=cfg.TRAIN.WARMUP_LR_RATIO)
    if cfg.TRAIN.OPT_LEVEL:
        logger.info("TRAIN.OPT_LEVEL %s (apex) mapped to torch.amp precision %s", cfg.TRAIN.OPT_LEVEL,
                    cfg.TRAIN.PRECISION)
    loss_fn = PrivacyLoss(mode=cfg.TRAIN.PRIVACY_LOSS,
                          weights=dict(zip(cfg.MODEL.PRIVACY_HEADS, cfg.TRAIN.PRIVACY_WEIGHTS)),
                          label_smoothing=cfg.AUG.LABEL_SMOOTH)
    return Trainer(model=model, optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn, device=info.device,
                   precision=cfg.TRAIN.PRECISION, scaler=build_grad_scaler(cfg.TRAIN.PRECISION, info.device),
                   mixup=build_mixup(cfg, np.random.default_rng([cfg.SEED, info.rank])),
                   accumulation_steps=cfg.TRAIN.ACCUMULATION_STEPS, clip_grad=cfg.TRAIN.CLIP_GRAD,
                   max_nonfinite=cfg.TRAIN.MAX_NONFINITE, head_optimizer=head_optimizer,
                   head_steps=cfg.TRAIN.ADV_STEPS - 1, world_size=info.world_size, print_freq=cfg.PRINT_FREQ)


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


def restore(trainer: Trainer, path: str, cfg: CfgNode, info: DistInfo) -> None:
    """Loads ``path`` into ``trainer`` on every rank: the whole training state of a checkpoint of
    this project (with this rank's RNG streams), or only the weights of an original-release file.

    Args:
        trainer: the trainer (model not yet wrapped).
        path: the checkpoint.
        cfg: the experiment config (``MODEL.ALLOW_PICKLE``).
        info: this process's distributed info.
    """
    state = load_checkpoint(path, allow_pickle=cfg.MODEL.ALLOW_PICKLE)
    if state.get("original"):
        load_model_weights(trainer.model, state["model"], path)
        logger.info("loaded original-release weights from %s (optimizer and schedule start fresh)", path)
        return
    trainer.load_state_dict(state, path)
    if len(state["rng"]) == info.world_size:
        restore_rng_state(state["rng"][info.rank])
    else:
        logger.warning("checkpoint written by %d ranks, resumed on %d: RNG streams restart",
                       len(state["rng"]), info.world_size)
    logger.info("resumed from %s at epoch %d, step %d", path, trainer.counters.epoch, trainer.counters.global_step)


def checkpoint_state(trainer: Trainer, cfg: CfgNode, info: DistInfo) -> dict[str, Any] | None:
    """The checkpoint dict on rank 0 (None elsewhere): :meth:`Trainer.state_dict` plus
    ``format_version``, ``rng`` (every rank's RNG states, gathered: call on every rank),
    ``world_size`` and ``config`` (the merged config as YAML text)."""
    rng_states = all_gather_objects(capture_rng_state(), info)
    if not info.is_main:
        return None
    return {"format_version": FORMAT_VERSION, **trainer.state_dict(), "rng": rng_states,
            "world_size": info.world_size, "config": cfg.dump()}


def _wrap(trainer: Trainer, cfg: CfgNode, info: DistInfo) -> None:
    """DDP (when distributed) and ``torch.compile`` (``TRAIN.COMPILE``) around the model."""
    if info.distributed:
        # gradients as views of the all-reduce buckets: one copy of them less. The buffers are
        # constants (class tokens, IFNS scales, the frozen text cache): synced once at
        # construction, not at every forward (forward_sync_buffers; broadcast_buffers is
        # deprecated in torch 2.14 and warns on every rank). Static graph: every trainable
        # parameter gets a gradient every step (frozen ones are not registered, PRIVACY_LOSS none
        # scales the encoder's share by 0 but the graph stays), so DDP may record the graph once;
        # but torch 2.14 asserts in the reducer when the first backward runs under no_sync()
        # (accumulation; pytorch#143580, fix pytorch#187732 open), and dynamo's DDPOptimizer
        # does not support it (pytorch#93672), so only plain runs of one micro-batch per step.
        static_graph = cfg.TRAIN.ACCUMULATION_STEPS == 1 and not cfg.TRAIN.COMPILE
        trainer.model = DistributedDataParallel(
            trainer.model, device_ids=[info.device.index] if info.device.type == "cuda" else None,
            forward_sync_buffers=False, gradient_as_bucket_view=True, static_graph=static_graph)
    if cfg.TRAIN.COMPILE:
        trainer.model = torch.compile(trainer.model)


def run(cfg: CfgNode, info: DistInfo) -> dict[str, Any]:
    """Trains and evaluates (or only evaluates) the experiment of ``cfg``.

    Args:
        cfg: the frozen experiment config.
        info: this process's distributed info.

    Returns:
        The last evaluation metrics plus ``wall_time``, ``num_classes`` (and ``best_acc1`` after
        training).
    """
    wall_start = time.time()
    if cfg.TEST.ONLY_TEST and not (cfg.MODEL.RESUME or cfg.MODEL.PRETRAINED.lower() not in RANDOM_INIT):
        raise UserError("--only_test True scores a trained model, but neither --resume nor "
                        "MODEL.PRETRAINED names one; pass --resume CKPT")
    loaders = build_loaders(cfg, rank=info.rank, world_size=info.world_size)
    model = build_model(cfg, loaders.class_names).to(info.device)
    logger.info("trainable parameters per module:\n%s", trainable_parameter_table(model))
    trainer = build_trainer(cfg, info, model, len(loaders.train))
    resume = resolve_resume(cfg, info)
    if resume:
        restore(trainer, resume, cfg, info)
    _wrap(trainer, cfg, info)
    prefix = TEST_ONLY_PREFIX if cfg.TEST.ONLY_TEST else ""
    if info.is_main:  # the wiring holds: now the run's own files may be (re)written
        atomic_write_text(os.path.join(cfg.OUTPUT, prefix + CONFIG_NAME), cfg.dump())
        logger.info("run folder %s (resolved config in %s)", cfg.OUTPUT, prefix + CONFIG_NAME)

    def run_eval(epoch: int) -> dict[str, Any]:
        metrics = evaluate(trainer.model, loaders.val, info=info, precision=cfg.TRAIN.PRECISION,
                           num_classes=len(loaders.class_names), train_labels=loaders.train_labels,
                           epoch=epoch, class_names=loaders.class_names, output_dir=cfg.OUTPUT,
                           file_prefix=prefix)
        logger.info("Test (epoch %d): %s", epoch, format_metrics(metrics))
        return metrics

    summary = {"num_classes": len(loaders.class_names)}
    if cfg.TEST.ONLY_TEST:
        return {**run_eval(trainer.counters.epoch), **summary, "wall_time": time.time() - wall_start}
    metrics = train(trainer, cfg, info, loaders, run_eval)
    return {**metrics, **summary, "best_acc1": trainer.counters.best_acc1, "wall_time": time.time() - wall_start}


def train(trainer: Trainer, cfg: CfgNode, info: DistInfo, loaders: Loaders, run_eval: Evaluator) -> dict[str, Any]:
    """The epochs from ``trainer.counters.epoch`` to ``TRAIN.EPOCHS``: train, evaluate every
    ``EVAL_FREQ`` epochs and after the last, save after every epoch (rank 0 writes; a
    ``ckpt_epoch_N.pth`` every ``SAVE_FREQ`` epochs and after the last). Before the first epoch
    rank 0 finishes a save that a kill interrupted (:meth:`CheckpointSaver.repair`).

    Args:
        trainer: the trainer (model wrapped).
        cfg: the experiment config.
        info: this process's distributed info.
        loaders: this rank's loaders (``train`` and its ``train_sampler`` are used).
        run_eval: evaluates after the given completed epochs and returns the metrics.

    Returns:
        The metrics of the last evaluation (evaluated now when no epoch was left to train).
    """
    saver = CheckpointSaver(cfg.OUTPUT, keep=cfg.SAVE_KEEP)
    writer = None
    if info.is_main:
        prune_temporaries(cfg.OUTPUT)
        saver.repair()
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
                    scalars = {**{key: metrics[key] for key in VAL_METRICS},
                               **{f"{name}_acc1": head["acc1"] for name, head in metrics["heads"].items()}}
                    for key, value in scalars.items():
                        if value is not None:
                            writer.add_scalar(f"val/{key}", value, done)
            state = checkpoint_state(trainer, cfg, info)
            if state is not None:
                saver.save(state, epoch=done, is_best=is_best,
                           periodic=done % cfg.SAVE_FREQ == 0 or done == cfg.TRAIN.EPOCHS)
            barrier(info)
    finally:
        if writer is not None:
            writer.close()
    return metrics or run_eval(trainer.counters.epoch)


def print_summary(metrics: dict[str, Any], file: TextIO | None = None) -> None:
    """The short summary printed at the end of a run: action top-1 beside chance, each privacy
    head's top-1, time.

    Args:
        metrics: what :func:`run` returned.
        file: where to print (default stdout).
    """
    file = file if file is not None else sys.stdout

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}%"

    chance = PERCENT / metrics["num_classes"]
    print(f"action top-1 {pct(metrics['acc1'])} (chance {chance:.1f}%), top-5 {pct(metrics['acc5'])}, "
          f"mean class {pct(metrics['mean_class_acc'])}", file=file)
    for name, head in metrics["heads"].items():
        print(f"{name} top-1 {pct(head['acc1'])} over {head['videos']} of {metrics['num_videos']} "
              f"videos whose {name} occurs in training ({metrics['num_views']} views per video)", file=file)
    print(f"wall time {format_seconds(metrics['wall_time'])}", file=file)
