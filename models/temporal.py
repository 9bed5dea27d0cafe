"""Temporal fusion transformer: per-frame class features -> one video feature (DESIGN 2.3)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from models.clip import HEAD_WIDTH, Transformer
from models.vision import NEW_MODULE_STD, init_new_module


class TemporalFusion(nn.Module):
    """``v = cls + pos``, pre-LN blocks, the input ``cls`` added back, mean over frames.

    Args:
        num_frames: frames T (length of the positional embedding).
        width: feature width E (heads = E // 64).
        layers: transformer blocks.
        backend: attention backend.
    """

    def __init__(self, *, num_frames: int, width: int, layers: int, backend: str = "sdpa") -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.empty(1, num_frames, width))
        nn.init.trunc_normal_(self.positional_embedding, std=NEW_MODULE_STD)
        self.transformer = Transformer(width, layers, width // HEAD_WIDTH, backend=backend)
        init_new_module(self.transformer)

    def forward(self, cls: Tensor) -> Tensor:
        """cls [B, T, E] -> video feature [B, E]."""
        x = self.transformer(cls + self.positional_embedding.to(cls.dtype))
        return (x + cls).mean(dim=1)
