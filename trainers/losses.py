"""Training losses: action cross-entropy (hard targets with label smoothing, or soft targets
under mixup/cutmix) and the privacy term on the identity logits."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

PRIVACY_MODES = ("aux", "adversarial", "none")
# gradient scale from the identity head into the encoder, per privacy mode: aux trains the encoder
# to keep identity (as the original release), adversarial reverses the gradient (BDQ minimax),
# none stops it (the head still learns, as a probe of what identity the features leak)
ID_GRAD_SCALE = {"aux": 1.0, "adversarial": -1.0, "none": 0.0}


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
    """Action loss plus the identity term.

    Args:
        mode: ``aux`` (+ weight * CE, encoder and head both minimise it), ``adversarial`` (the head
            minimises CE, the encoder maximises it through gradient reversal), ``none`` (the encoder
            gets no identity gradient; the head trains as a probe).
        weight: weight of the identity term.
        label_smoothing: smoothing of hard action and identity targets.
    """

    mode: str = "aux"
    weight: float = 1.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in PRIVACY_MODES:
            raise ValueError(f"privacy mode {self.mode!r} is not one of {PRIVACY_MODES}")

    @property
    def id_grad_scale(self) -> float:
        """The ``id_grad_scale`` the model forward takes in this mode."""
        return ID_GRAD_SCALE[self.mode]

    def __call__(self, action_logits: torch.Tensor, identity_logits: torch.Tensor,
                 action_target: torch.Tensor, identity_target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Computes the losses in fp32.

        Args:
            action_logits: [B, K].
            identity_logits: [B, P].
            action_target: [B] labels or [B, K] soft targets.
            identity_target: [B] labels or [B, P] soft targets.

        Returns:
            ``loss`` (the total to backpropagate), ``action`` and ``identity`` (detached parts).
        """
        action = target_cross_entropy(action_logits.float(), action_target, self.label_smoothing)
        identity = target_cross_entropy(identity_logits.float(), identity_target, self.label_smoothing)
        weight = self.weight if self.mode != "none" else 1.0
        return {"loss": action + weight * identity, "action": action.detach(), "identity": identity.detach()}

    def identity_only(self, identity_logits: torch.Tensor, identity_target: torch.Tensor) -> torch.Tensor:
        """The identity cross-entropy alone (extra head updates of the adversarial alternation)."""
        return target_cross_entropy(identity_logits.float(), identity_target, self.label_smoothing)
