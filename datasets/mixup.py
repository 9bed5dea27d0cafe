"""Mixup / CutMix over clips that mixes the action AND the privacy targets with one lambda.

One lambda and one permutation per batch; the CutMix box is the same for all T frames of a clip,
and lambda is corrected to the exact box area.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from yacs.config import CfgNode


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """[B] int labels -> [B, num_classes] targets with label smoothing (rows sum to 1)."""
    off = smoothing / num_classes
    return F.one_hot(labels, num_classes).float() * (1.0 - smoothing) + off


class Mixup:
    """Batch-level Mixup / CutMix for clips with action and privacy targets.

    Args:
        mixup_alpha: Beta(alpha, alpha) of Mixup (0 = off).
        cutmix_alpha: Beta(alpha, alpha) of CutMix (0 = off).
        switch_prob: probability of CutMix instead of Mixup when both are on.
        label_smoothing: smoothing of both target sets.
        num_classes: K, action classes.
        privacy_classes: privacy head name -> its classes (identity, attributes).
        generator: source of the random draws (None = a fresh unseeded one).
    """

    def __init__(self, mixup_alpha: float, cutmix_alpha: float, switch_prob: float,
                 label_smoothing: float, num_classes: int, privacy_classes: Mapping[str, int],
                 generator: np.random.Generator | None = None) -> None:
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.switch_prob = switch_prob
        self.label_smoothing = label_smoothing
        self.num_classes = num_classes
        self.privacy_classes = dict(privacy_classes)
        self.rng = generator if generator is not None else np.random.default_rng()

    def _draw(self) -> tuple[float, bool]:
        """(lambda, use cutmix)."""
        use_cutmix = self.cutmix_alpha > 0 and (
            self.mixup_alpha <= 0 or self.rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        return float(self.rng.beta(alpha, alpha)), use_cutmix

    def _box(self, lam: float, height: int, width: int) -> tuple[int, int, int, int]:
        """A box of area about (1 - lam) of the frame, clipped to it: (top, bottom, left, right)."""
        ratio = np.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * ratio), int(width * ratio)
        cy, cx = int(self.rng.integers(height)), int(self.rng.integers(width))
        top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
        left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
        return int(top), int(bottom), int(left), int(right)

    def draw(self, batch_size: int, height: int, width: int, device: torch.device | str = "cpu") -> "MixDraw":
        """The mix of one batch: lambda, permutation and (CutMix) box, drawn in that order.

        Args:
            batch_size: B.
            height: rows of the clips to mix.
            width: columns of the clips to mix.
            device: where the permutation lives.
        """
        lam, use_cutmix = self._draw()
        perm = torch.from_numpy(self.rng.permutation(batch_size)).to(device)
        box = None
        if use_cutmix:
            box = self._box(lam, height, width)
            top, bottom, left, right = box
            lam = 1.0 - (bottom - top) * (right - left) / (height * width)
        return MixDraw(lam, perm, box, self)


@dataclass(frozen=True)
class MixDraw:
    """One batch's mix: applied to the encoded clips inside the model (``mix=``), and to the targets.

    Args:
        lam: weight of the batch itself (exact box area under CutMix).
        perm: [B] the partner of every clip.
        box: CutMix box (top, bottom, left, right), or None for Mixup.
        mixup: the :class:`Mixup` it came from (smoothing and class counts).
    """

    lam: float
    perm: torch.Tensor
    box: tuple[int, int, int, int] | None
    mixup: Mixup

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        """Mixed clips ``[B, T, 3, H, W]``."""
        perm = self.perm.to(clips.device)
        if self.box is None:
            return clips * self.lam + clips[perm] * (1.0 - self.lam)
        top, bottom, left, right = self.box
        clips = clips.clone()
        clips[..., top:bottom, left:right] = clips[perm][..., top:bottom, left:right]
        return clips

    def mixed(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Labels [B] -> smoothed one-hot targets [B, num_classes] mixed like the clips."""
        target = smooth_one_hot(labels, num_classes, self.mixup.label_smoothing)
        perm = self.perm.to(labels.device)
        return target * self.lam + target[perm] * (1.0 - self.lam)

    def targets(self, label: torch.Tensor, privacy: Mapping[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Soft action targets [B, K] and privacy targets ``{head: [B, C_h]}`` mixed like the clips."""
        classes = self.mixup.privacy_classes
        return (self.mixed(label, self.mixup.num_classes),
                {name: self.mixed(target, classes[name]) for name, target in privacy.items()})


def build_mixup(cfg: CfgNode, generator: np.random.Generator | None = None) -> Mixup | None:
    """The Mixup of ``cfg`` (``AUG.*``), or None when both alphas are 0.

    Args:
        cfg: the experiment config.
        generator: source of the draws; pass one seeded from (SEED, rank) for reproducible runs.
    """
    if cfg.AUG.MIXUP <= 0 and cfg.AUG.CUTMIX <= 0:
        return None
    return Mixup(mixup_alpha=cfg.AUG.MIXUP, cutmix_alpha=cfg.AUG.CUTMIX,
                 switch_prob=cfg.AUG.MIXUP_SWITCH_PROB, label_smoothing=cfg.AUG.LABEL_SMOOTH,
                 num_classes=cfg.DATA.NUM_CLASSES,
                 privacy_classes=dict(zip(cfg.MODEL.PRIVACY_HEADS, cfg.MODEL.PRIVACY_CLASSES)),
                 generator=generator)
