"""Privacy heads: what MSPNet's video feature still says about the person, and the gradient
reversal that lets the encoder learn to hide it.

The identity head is one ``Linear(E, P)`` on the normalised video feature (the original release's
``id_classifier``), trained from scratch (:func:`models.vision.init_new_module`).
``TRAIN.PRIVACY_LOSS aux`` adds its cross-entropy to the action loss (the
release's recipe); ``adversarial`` passes the feature through :func:`scale_grad` with a negative
scale, so the head minimises the identity loss while the encoder maximises it (BDQ-style minimax).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``scale`` backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def scale_grad(x: Tensor, scale: float) -> Tensor:
    """Returns x unchanged; its gradient is multiplied by ``scale`` (negative = gradient reversal)."""
    return x if scale == 1.0 else _ScaleGrad.apply(x, scale)


class IdentityHead(nn.Linear):
    """Identity logits ``[B, P]`` of normalised video features ``[B, E]`` (``Linear(E, P)``; the
    model initialises it with the other modules trained from scratch, :func:`init_new_module`).

    Args:
        embed_dim: E.
        num_identities: P.
    """

    def __init__(self, embed_dim: int, num_identities: int) -> None:
        super().__init__(embed_dim, num_identities)
