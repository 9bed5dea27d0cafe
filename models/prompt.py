"""Video-specific prompt generator: text features attend to the clip's patch tokens (DESIGN 2.4)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from models.attention import Attention
from models.clip import HEAD_WIDTH, Mlp
from models.vision import init_new_module


class PromptLayer(nn.Module):
    """``t = t + cross_attn(norm1(t), context)``, then ``t = t + mlp(norm3(t))``.

    Args:
        width: feature width E (heads = E // 64).
        backend: attention backend.
    """

    def __init__(self, width: int, *, backend: str = "sdpa") -> None:
        super().__init__()
        self.cross_attn = Attention(width, width // HEAD_WIDTH, bias=False, backend=backend)
        self.norm1 = nn.LayerNorm(width)
        self.norm3 = nn.LayerNorm(width)
        self.mlp = Mlp(width)

    def forward(self, text: Tensor, context: Tensor) -> Tensor:
        """text [B, K, E], context [B, N, E] -> [B, K, E]."""
        text = text + self.cross_attn(self.norm1(text), context)
        return text + self.mlp(self.norm3(text))


class VideoPrompt(nn.Module):
    """Patch tokens -> visual context -> a per-clip offset of every class text feature.

    Args:
        vision_width: patch token width d.
        width: joint embedding width E.
        layers: decoder layers.
        alpha: initial value of the per-dimension output scale.
        backend: attention backend.
    """

    def __init__(self, *, vision_width: int, width: int, layers: int, alpha: float,
                 backend: str = "sdpa") -> None:
        super().__init__()
        self.visual_ln = nn.LayerNorm(vision_width)
        self.visual_proj = nn.Parameter(torch.randn(vision_width, width))
        self.norm = nn.LayerNorm(width)
        self.decoder = nn.ModuleList(PromptLayer(width, backend=backend) for _ in range(layers))
        self.alpha = nn.Parameter(torch.full((width,), alpha))
        init_new_module(self.decoder)

    def forward(self, text: Tensor, patches: Tensor) -> Tensor:
        """text [B, K, E], patch tokens [B, T, N, d] -> prompt [B, K, E] (alpha-scaled)."""
        context = self.visual_ln(patches).mean(dim=1) @ self.visual_proj  # [B, N, E]
        context = self.norm(context)
        for layer in self.decoder:
            text = layer(text, context)
        return self.alpha * text
