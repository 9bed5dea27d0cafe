"""CFSA (Cross-Frame Semantic Aggregator): CLIP ViT blocks with one message token per frame.

A block takes the tokens of every frame of a clip, ``[B*T, L, d]`` (frames of one clip
consecutive): the class token of each frame becomes a message, the messages of a clip attend to
each other across the T frames, and each frame attends over its own tokens plus its message as one
extra token (DESIGN section 2.2). Parameter names follow the original release
(``message_fc``, ``message_ln``, ``message_attn``, ``attn``, ``ln_1``, ``ln_2``, ``mlp``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from models.attention import Attention
from models.clip import Mlp, drop_path_or_identity


class CFSABlock(nn.Module):
    """Cross-Frame Semantic Aggregator block (DESIGN section 2.2).

    Each frame's class token becomes a message; messages attend across the frames of their clip;
    each frame's tokens then attend over themselves plus their frame's message token.

    Args:
        width: token width d.
        heads: attention heads (d // 64).
        drop_path: stochastic depth rate of the residual branches.
        backend: attention backend.
    """

    def __init__(self, width: int, heads: int, *, drop_path: float = 0.0, backend: str = "sdpa") -> None:
        super().__init__()
        self.message_fc = nn.Linear(width, width)
        self.message_ln = nn.LayerNorm(width)
        self.message_attn = Attention(width, heads, backend=backend)
        self.attn = Attention(width, heads, backend=backend)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = Mlp(width)
        self.ln_2 = nn.LayerNorm(width)
        self.drop_path = drop_path_or_identity(drop_path)

    def message_modules(self) -> list[nn.Module]:
        """The modules CFSA adds to a CLIP block (trained from scratch)."""
        return [self.message_fc, self.message_ln, self.message_attn]

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        """x [B*T, L, d] with the T frames of a clip consecutive -> [B*T, L, d]."""
        frames, _, width = x.shape
        msg = self.message_fc(x[:, 0]).view(frames // num_frames, num_frames, width)  # [B, T, d]
        msg = msg + self.drop_path(self.message_attn(self.message_ln(msg)))
        msg = msg.reshape(frames, 1, width)  # one message token per frame
        x = x + self.drop_path(self.attn(self.ln_1(x), extra=self.ln_1(msg)))
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class CFSATransformer(nn.Module):
    """The stack of CFSA blocks under the CLIP name ``resblocks``.

    Args:
        width: token width d.
        layers: blocks.
        heads: attention heads.
        drop_path_rate: stochastic depth of the last block (linear from 0 over depth).
        backend: attention backend.
    """

    def __init__(self, width: int, layers: int, heads: int, *, drop_path_rate: float = 0.0,
                 backend: str = "sdpa") -> None:
        super().__init__()
        rates = [drop_path_rate * i / max(layers - 1, 1) for i in range(layers)]
        self.resblocks = nn.ModuleList(
            CFSABlock(width, heads, drop_path=rate, backend=backend) for rate in rates)
        self.grad_checkpointing = False

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        for block in self.resblocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, num_frames, use_reentrant=False)
            else:
                x = block(x, num_frames)
        return x
