"""CLIP building blocks: sizes, pre-LN residual blocks, the class-name tokenizer, CLIP weight files.

Parameter names follow OpenAI CLIP (``ln_1``, ``attn``, ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``,
``resblocks.{i}``) so OpenAI and open_clip weights load unchanged.
"""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING
from collections import OrderedDict
from dataclasses import dataclass

import open_clip
import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import Tensor, nn

from models.attention import Attention
from models.convert import (CheckpointError, convert_original_state_dict, extract_state_dict,
                            is_original_state_dict, load_checkpoint_file)

if TYPE_CHECKING:
    from models.mspnet import MSPNet

logger = logging.getLogger(__name__)

HEAD_WIDTH = 64  # channels per attention head everywhere (heads = width // 64)
MLP_RATIO = 4
VOCAB_SIZE = 49408  # CLIP BPE vocabulary
CONTEXT_LENGTH = 77  # CLIP text tokens
QUICK_GELU_SLOPE = 1.702  # CLIP's sigmoid approximation of GELU
LISTED_KEYS = 4  # offending keys named in a loading error
# Keys of CLIP files that are not parameters of the towers.
CLIP_NON_PARAMETER_KEYS = ("input_resolution", "context_length", "vocab_size", "attn_mask")


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

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.ln_1(x), causal=self.causal))
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


def clean_clip_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Strips wrappers from a CLIP / open_clip state dict: ``module.`` prefixes, non-parameters."""
    cleaned = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key in CLIP_NON_PARAMETER_KEYS or not isinstance(value, Tensor):
            continue
        cleaned[key] = value
    return cleaned


def resize_positional_embedding(pos: Tensor, num_tokens: int) -> Tensor:
    """Resizes a ViT positional embedding [1 + g*g, d] to [num_tokens, d] (bicubic over the grid).

    Args:
        pos: class-token row followed by the square patch grid.
        num_tokens: 1 + the new grid's patch count.
    """
    if pos.shape[0] == num_tokens:
        return pos
    old_grid, new_grid = math.isqrt(pos.shape[0] - 1), math.isqrt(num_tokens - 1)
    grid = pos[1:].reshape(1, old_grid, old_grid, -1).permute(0, 3, 1, 2)  # [1, d, g, g]
    grid = F.interpolate(grid.float(), size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(new_grid * new_grid, -1).to(pos.dtype)
    logger.info("resized the vision positional embedding from a %dx%d to a %dx%d grid",
                old_grid, old_grid, new_grid, new_grid)
    return torch.cat([pos[:1], grid], dim=0)


def load_pretrained(model: MSPNet, path: str, allow_pickle: bool = False) -> None:
    """Fills ``model`` from a weight file and logs one summary of what was loaded.

    Accepted files: an OpenAI CLIP TorchScript archive or state dict, an open_clip checkpoint
    (both fill the CLIP towers; the CFSA/IFNS/temporal/prompt/identity modules keep their init),
    this project's checkpoint, or an original-release checkpoint (converted on the fly).

    Args:
        model: an :class:`~models.mspnet.MSPNet`.
        path: the file.
        allow_pickle: opt-in to unpickle original-release checkpoints.

    Raises:
        CheckpointError: missing/unreadable file, or weights that do not fit the configured size.
    """
    own = model.state_dict()
    new = model.new_parameter_names()
    state_dict = extract_state_dict(load_checkpoint_file(path, allow_pickle))
    if is_original_state_dict(state_dict):
        state_dict, kind = convert_original_state_dict(state_dict), "original-release MSPNet"
    else:
        state_dict = clean_clip_state_dict(state_dict)
        kind = "MSPNet" if new & set(state_dict) else "CLIP"
    key = "visual.positional_embedding"
    if key in state_dict and key in own:
        state_dict[key] = resize_positional_embedding(state_dict[key], own[key].shape[0])
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = sorted(k for k in set(state_dict) & set(own) if state_dict[k].shape != own[k].shape)
    if unexpected or mismatched:
        bad = ", ".join((unexpected + mismatched)[:LISTED_KEYS])
        raise CheckpointError(f"{path} ({kind}) does not fit MODEL.ARCH / DATA sizes: unexpected or "
                              f"mismatched {bad}; pick the matching MODEL.ARCH or MODEL.PRETRAINED none")
    missing = set(own) - set(state_dict)
    if missing != (new if kind == "CLIP" else set()):  # a CLIP file lacks exactly the new modules
        lacking = sorted(missing - new if kind == "CLIP" else missing)
        raise CheckpointError(f"{path} ({kind}) is incomplete: it lacks {', '.join(lacking[:LISTED_KEYS])}; "
                              "pass a complete file or MODEL.PRETRAINED none")
    model.load_state_dict({**own, **state_dict})
    values = sum(v.numel() for v in state_dict.values())
    left = (f"{len(missing)} tensors of the new modules (visual.conv0, message_fc/ln/attn, temporal, "
            "prompt, id_head)") if missing else "nothing"
    logger.info("loaded %d tensors (%.2fM values) from %s (%s); left at init: %s", len(state_dict),
                values / 1e6, path, kind, left)
