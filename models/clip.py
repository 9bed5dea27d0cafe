"""CLIP building blocks: sizes, pre-LN residual blocks, the class-name tokenizer.

Parameter names follow OpenAI CLIP (``ln_1``, ``attn``, ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``,
``resblocks.{i}``) so OpenAI and open_clip weights load unchanged.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import open_clip
import torch
from timm.layers import DropPath
from torch import Tensor, nn

from models.attention import Attention

logger = logging.getLogger(__name__)

HEAD_WIDTH = 64  # channels per attention head everywhere (heads = width // 64)
MLP_RATIO = 4
VOCAB_SIZE = 49408  # CLIP BPE vocabulary
CONTEXT_LENGTH = 77  # CLIP text tokens
QUICK_GELU_SLOPE = 1.702  # CLIP's sigmoid approximation of GELU


@dataclass(frozen=True)
class ClipSize:
    """Widths and depths of the CLIP towers.

    Args:
        embed_dim: joint embedding width E.
        width: vision width d.
        layers: vision transformer blocks.
        patch_size: patch side in pixels.
        image_size: input side the released weights were trained at.
        text_width: text transformer width.
        text_layers: text transformer blocks.
        context_length: text tokens.
        vocab_size: BPE vocabulary size.
    """

    embed_dim: int
    width: int
    layers: int
    patch_size: int
    image_size: int
    text_width: int
    text_layers: int
    context_length: int = CONTEXT_LENGTH
    vocab_size: int = VOCAB_SIZE

    @property
    def heads(self) -> int:
        return self.width // HEAD_WIDTH

    @property
    def text_heads(self) -> int:
        return self.text_width // HEAD_WIDTH


CLIP_SIZES = {
    "ViT-B/32": ClipSize(embed_dim=512, width=768, layers=12, patch_size=32, image_size=224,
                         text_width=512, text_layers=12),
    "ViT-B/16": ClipSize(embed_dim=512, width=768, layers=12, patch_size=16, image_size=224,
                         text_width=512, text_layers=12),
    "ViT-L/14": ClipSize(embed_dim=768, width=1024, layers=24, patch_size=14, image_size=224,
                         text_width=768, text_layers=12),
    "ViT-L/14-336": ClipSize(embed_dim=768, width=1024, layers=24, patch_size=14, image_size=336,
                             text_width=768, text_layers=12),
}


class QuickGELU(nn.Module):
    """CLIP's activation x * sigmoid(1.702 x)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(QUICK_GELU_SLOPE * x)


class Mlp(nn.Sequential):
    """Linear(d, 4d), QuickGELU, Linear(4d, d) with CLIP's names ``c_fc``, ``c_proj``.

    Args:
        width: input and output width.
    """

    def __init__(self, width: int) -> None:
        super().__init__(OrderedDict([
            ("c_fc", nn.Linear(width, width * MLP_RATIO)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(width * MLP_RATIO, width)),
        ]))


def drop_path_or_identity(rate: float) -> nn.Module:
    """Stochastic depth on a residual branch, or identity when the rate is zero."""
    return DropPath(rate) if rate > 0 else nn.Identity()


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).

    Args:
        width: token width.
        heads: attention heads.
        causal: causal self-attention (text).
        drop_path: stochastic depth rate of both residual branches.
        backend: attention backend.
    """

    def __init__(self, width: int, heads: int, *, causal: bool = False, drop_path: float = 0.0,
                 backend: str = "sdpa") -> None:
        super().__init__()
        self.causal = causal
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, backend=backend)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = Mlp(width)
        self.drop_path = drop_path_or_identity(drop_path)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """x [N, L, width] -> [N, L, width]; ``key_mask`` [N, L or 1, L]: additive attention mask
        (0 = visible, -inf = hidden; :meth:`models.attention.Attention.forward`), or None."""
        x = x + self.drop_path(self.attn(self.ln_1(x), causal=self.causal, key_mask=key_mask))
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` under the CLIP name ``resblocks``.

    Args:
        width: token width.
        layers: blocks.
        heads: attention heads.
        causal: causal self-attention.
        backend: attention backend.
    """

    def __init__(self, width: int, layers: int, heads: int, *, causal: bool = False,
                 backend: str = "sdpa") -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, causal=causal, backend=backend) for _ in range(layers))

    def forward(self, x: Tensor) -> Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


def init_clip_transformer(transformer: Transformer | nn.Module, width: int, layers: int) -> None:
    """CLIP's initialisation of a residual stack (std scaled by width and depth)."""
    attn_std = width ** -0.5
    proj_std = attn_std * (2 * layers) ** -0.5
    fc_std = (2 * width) ** -0.5
    for block in transformer.resblocks:
        nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
        nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
        nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
        nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)


def tokenize(class_names: list[str], context_length: int) -> Tensor:
    """Class names -> CLIP BPE tokens [K, context_length] (open_clip's tokenizer, offline)."""
    return open_clip.tokenize(class_names, context_length=context_length)
