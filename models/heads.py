"""Privacy heads: what MSPNet's video feature still says about the person, and the gradient
reversal that lets the encoder learn to hide it.

Each privacy head is one ``Linear(E, C)`` on the normalised video feature, trained from scratch
(:func:`models.vision.init_new_module`): the identity (the original release's ``id_classifier``)
and, on P3AR-PKU, the five appearance attributes (the release's ``uuu_classifier`` ...
``yyy_classifier``). ``TRAIN.PRIVACY_LOSS aux`` adds their weighted cross-entropies to the action
loss (the release's recipe); ``adversarial`` passes the feature through :func:`scale_grad` with a
negative scale, so the heads minimise their losses while the encoder maximises them (BDQ-style
minimax).
"""
from __future__ import annotations

from typing import Any, Mapping

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


class PrivacyHeads(nn.ModuleDict):
    """One ``Linear(E, C_h)`` per privacy label: normalised video features ``[B, E]`` -> logits
    ``{name: [B, C_h]}``, in the order of ``classes``.

    Args:
        embed_dim: E.
        classes: head name (a privacy label of the sample names: identity, gender, ...) -> its
            number of classes C_h.
    """

    def __init__(self, embed_dim: int, classes: Mapping[str, int]) -> None:
        super().__init__({name: nn.Linear(embed_dim, count) for name, count in classes.items()})

    @property
    def classes(self) -> dict[str, int]:
        """Head name -> number of classes."""
        return {name: head.out_features for name, head in self.items()}

    def forward(self, video: Tensor) -> dict[str, Tensor]:
        """Logits of every head for the video features [B, E]."""
        return {name: head(video) for name, head in self.items()}
