"""Training losses: action cross-entropy (hard targets with label smoothing, or soft targets
under mixup/cutmix), the privacy term, a weighted sum over the privacy heads' logits, and the
input encoder's auxiliary losses (:func:`with_aux_losses`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

PRIVACY_MODES = ("aux", "adversarial", "none")
# gradient scale from the privacy heads into the encoder, per privacy mode: aux trains the encoder
# to keep the labels (as the original release), adversarial reverses the gradient (BDQ minimax),
# none stops it (the heads still learn, as probes of what the features leak)
PRIVACY_GRAD_SCALE = {"aux": 1.0, "adversarial": -1.0, "none": 0.0}
PROBE_WEIGHT = 1.0  # weight of each head's loss in mode none (the encoder gets no gradient from it)


def soft_target_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against soft targets.

    Args:
        logits: [B, C] unnormalised scores.
        target: [B, C] probabilities (rows sum to 1).
    """
    return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()


def target_cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Cross-entropy for hard labels [B] (with label smoothing) or soft targets [B, C]."""
    if target.ndim == 2:
        return soft_target_cross_entropy(logits, target)
    return F.cross_entropy(logits, target, label_smoothing=label_smoothing)


@dataclass(frozen=True)
class PrivacyLoss:
    """Action loss plus the privacy term ``sum_h w_h * CE_h`` over the privacy heads.

    Args:
        mode: ``aux`` (the encoder and the heads both minimise the privacy term), ``adversarial``
            (the heads minimise it, the encoder maximises it through gradient reversal), ``none``
            (the encoder gets no privacy gradient; each head trains as a probe at weight 1).
        weights: head name -> weight w_h of its cross-entropy (every head the model has).
        label_smoothing: smoothing of hard action and privacy targets.
    """

    mode: str = "aux"
    weights: Mapping[str, float] = field(default_factory=lambda: {"identity": 1.0})
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in PRIVACY_MODES:
            raise ValueError(f"privacy mode {self.mode!r} is not one of {PRIVACY_MODES}")

    @property
    def privacy_grad_scale(self) -> float:
        """The ``privacy_grad_scale`` the model forward takes in this mode."""
        return PRIVACY_GRAD_SCALE[self.mode]

    @property
    def heads(self) -> tuple[str, ...]:
        """The privacy heads, in order."""
        return tuple(self.weights)

    def privacy_term(self, logits: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted privacy term and each head's cross-entropy (fp32).

        Args:
            logits: head -> [B, C_h].
            targets: head -> [B] labels or [B, C_h] soft targets.
        """
        parts = {name: target_cross_entropy(logits[name].float(), targets[name], self.label_smoothing)
                 for name in self.weights}
        return sum((self.weight(name) * part for name, part in parts.items()), torch.zeros(())), parts

    def weight(self, name: str) -> float:
        """The weight of head ``name``'s loss in this mode."""
        return self.weights[name] if self.mode != "none" else PROBE_WEIGHT

    def __call__(self, action_logits: torch.Tensor, privacy_logits: Mapping[str, torch.Tensor],
                 action_target: torch.Tensor, privacy_targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Computes the losses in fp32.

        Args:
            action_logits: [B, K].
            privacy_logits: head -> [B, C_h].
            action_target: [B] labels or [B, K] soft targets.
            privacy_targets: head -> [B] labels or [B, C_h] soft targets.

        Returns:
            ``loss`` (the total to backpropagate), ``action`` and one entry per head (detached
            cross-entropies, unweighted).
        """
        action = target_cross_entropy(action_logits.float(), action_target, self.label_smoothing)
        privacy, parts = self.privacy_term(privacy_logits, privacy_targets)
        return {"loss": action + privacy, "action": action.detach(),
                **{name: part.detach() for name, part in parts.items()}}

    def heads_only(self, logits: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The heads' unweighted cross-entropies summed (the extra head updates of the adversarial
        alternation: each head is its own linear layer, so each gets its own loss's gradient)."""
        return sum(self.privacy_term(logits, targets)[1].values(), torch.zeros(()))


def with_aux_losses(losses: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Adds the model's auxiliary losses of its last forward to the total.

    Args:
        losses: what :class:`PrivacyLoss` returned.
        model: the unwrapped model; its ``aux_losses()`` (when it has one) gives name -> weighted
            scalar (STPrivacy's keep-ratio loss).

    Returns:
        ``losses`` with each auxiliary loss added to ``loss`` (fp32) and listed, detached, under
        its name; unchanged when there is none.
    """
    aux = model.aux_losses() if hasattr(model, "aux_losses") else {}
    if not aux:
        return losses
    total = losses["loss"] + sum(value.float() for value in aux.values())
    return {**losses, "loss": total, **{name: value.detach() for name, value in aux.items()}}
