"""Fresh attackers: timm image models on single frames (a test video is classified by the softmax
averaged over its T frames, the BDQ protocol), video attackers on whole clips
(:mod:`privacy.video_attackers`) and linear / MLP probes on video features.

An attacker may learn several labels at once (``--label attributes``): its outputs are the
concatenated logits of label groups of C_1, ..., C_G classes, each with its own softmax and
cross-entropy (the losses summed)."""
from __future__ import annotations

import logging
import math
import os
from typing import Sequence

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from privacy.video_attackers import VIDEO_ATTACKERS, build_video_attacker
from trainers.metrics import topk_accuracy as hits
from utils.errors import UserError

logger = logging.getLogger(__name__)

CPU = torch.device("cpu")
FRAME_ATTACKERS = {"resnet18": "resnet18", "resnet50": "resnet50", "vit_small": "vit_small_patch16_224"}
FEATURE_ATTACKERS = ("linear", "mlp")
WEIGHT_DECAY = 0.05
MLP_HIDDEN = 256
VIT_PATCH_DIVISOR = 8  # small inputs: ViT patch = side / 8 (64 tokens), 16 from 128 px up
VIT_PATCH = 16
SHIFT_PAD = 2  # random-translation augmentation of image attackers, pixels
PERCENT = 100.0


class AttackError(UserError):
    """A bad combination of privacy-attack options; the message says what to change."""


def build_attacker(name: str, num_classes: int, image_size: int, in_features: int,
                   weights: str = "", num_frames: int = 1) -> nn.Module:
    """A fresh attacker.

    Args:
        name: resnet18 | resnet50 | vit_small (frames), temporal | r3d_18 | r2plus1d_18 (clips)
            or linear | mlp (features).
        num_classes: outputs.
        image_size: input side of image attackers.
        in_features: feature width of probes.
        weights: optional local weights file of an image or video attacker (its classifier is replaced).
        num_frames: frames T of a clip (video attackers).
    """
    if name in VIDEO_ATTACKERS:
        return build_video_attacker(name, num_classes, num_frames, weights)
    if name in FEATURE_ATTACKERS:
        if name == "linear":
            return nn.Linear(in_features, num_classes)
        return nn.Sequential(nn.Linear(in_features, MLP_HIDDEN), nn.GELU(),
                             nn.Linear(MLP_HIDDEN, num_classes))
    kwargs: dict = {}
    if name == "vit_small":
        patch = VIT_PATCH if image_size >= VIT_PATCH * VIT_PATCH_DIVISOR else max(1, image_size // VIT_PATCH_DIVISOR)
        kwargs = {"img_size": image_size, "patch_size": patch}
    if weights:
        if not os.path.isfile(weights):
            raise AttackError(f"--weights file not found: {weights}")
        return timm.create_model(FRAME_ATTACKERS[name], pretrained=True, num_classes=num_classes,
                                 pretrained_cfg_overlay={"file": weights}, **kwargs)
    return timm.create_model(FRAME_ATTACKERS[name], pretrained=False, num_classes=num_classes, **kwargs)


def _shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to SHIFT_PAD pixels (replicate borders) and horizontal flip;
    clips [N, T, 3, H, W] move as a whole (every frame of a clip alike)."""
    if images.ndim == 5:
        return _shift(images.flatten(1, 2), generator).view_as(images)
    n, _, h, w = images.shape
    padded = F.pad(images, (SHIFT_PAD,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * SHIFT_PAD + 1, (2,), generator=generator).tolist()
    out = padded[:, :, dy:dy + h, dx:dx + w]
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def group_slices(groups: Sequence[int]) -> list[slice]:
    """The output columns of each label group of ``groups`` classes."""
    starts = [sum(groups[:g]) for g in range(len(groups))]
    return [slice(start, start + count) for start, count in zip(starts, groups)]


def group_softmax(logits: torch.Tensor, groups: Sequence[int]) -> torch.Tensor:
    """Softmax inside each label group: [N, sum C] -> [N, sum C]."""
    return torch.cat([logits[:, part].softmax(-1) for part in group_slices(groups)], dim=1)


def train_attacker(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
                   batch_size: int, seed: int, augment: bool, device: torch.device = CPU,
                   groups: Sequence[int] | None = None) -> None:
    """Trains ``model`` on samples ``x`` [M, ...] with labels ``y`` [M] (one label) or [M, G]
    (one column per label group of ``groups``) (AdamW, cosine schedule).

    The samples stay in host memory; each batch is augmented there (seeded) and moved to
    ``device``, where ``model`` lives.
    """
    y = y[:, None] if y.ndim == 1 else y  # [M, G]
    parts = group_slices(groups) if groups is not None else [slice(None)]
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, epochs * steps_per_epoch))
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total, correct, seen = 0.0, 0, 0
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            inputs = (_shift(x[idx], generator) if augment else x[idx]).to(device)
            labels = y[idx].to(device)
            logits = model(inputs)
            loss = sum(F.cross_entropy(logits[:, part], labels[:, g]) for g, part in enumerate(parts))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
            correct += (logits[:, parts[0]].argmax(-1) == labels[:, 0]).sum().item()
            seen += len(idx)
        logger.info("attacker epoch %d/%d: loss %.4f, train acc (first label) %.2f%%", epoch + 1, epochs,
                    total / seen, PERCENT * correct / seen)


@torch.no_grad()
def video_probabilities(model: nn.Module, x: torch.Tensor, batch_size: int,
                        device: torch.device = CPU, groups: Sequence[int] | None = None,
                        per_frame: bool | None = None) -> torch.Tensor:
    """Softmax per video (on the CPU): averaged over the T frames for [N, T, 3, S, S] and a frame
    attacker (``per_frame``; None = whenever x is 5-D), direct for a video attacker or [N, E]
    features; inside each label group of ``groups`` (None = one softmax over all outputs)."""
    per_frame = x.ndim == 5 if per_frame is None else per_frame
    softmax = (lambda z: z.softmax(-1)) if groups is None else (lambda z: group_softmax(z, groups))
    model.eval()
    probs = []
    for start in range(0, len(x), batch_size):
        chunk = x[start:start + batch_size].to(device)
        if per_frame:
            b, t = chunk.shape[:2]
            p = softmax(model(chunk.flatten(0, 1))).unflatten(0, (b, t)).mean(1)  # [B, C]
        else:
            p = softmax(model(chunk))
        probs.append(p.float().cpu())
    return torch.cat(probs)


def topk_accuracy(probs: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Percent of rows whose label is among the ``k`` most probable classes (k capped at the
    classes), through the evaluation's top-k rule."""
    topk = probs.topk(min(k, probs.shape[1]), dim=-1).indices
    return PERCENT * hits(topk, labels, k).double().mean().item()
