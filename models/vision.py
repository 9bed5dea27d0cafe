"""The vision tower: IFNS stem (plane mix and patch embedding) and the CFSA transformer
(:mod:`models.cfsa`, CLIP ViT blocks with cross-frame message tokens).

Parameter names are those of the original release (``visual.conv0``, ``visual.conv1``,
``visual.transformer.resblocks.{i}.message_fc`` ...), so CLIP weights and original checkpoints
load by name.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.attention import Attention
from models.cfsa import CFSATransformer

IFNS_PLANES = 3  # fd(t-1), fd(t), avg(t)
NEW_MODULE_STD = 0.02  # truncated-normal std of layers trained from scratch


class VisionTransformer(nn.Module):
    """IFNS stem + CLIP ViT with CFSA blocks.

    ``conv0`` (1x1, 3 -> 3, no bias) mixes the IFNS planes. It starts as the identity matrix, so
    plane k enters patch-embedding input channel k unchanged: a pretrained patch embedding sees
    the normalised planes exactly where it saw the normalised R, G, B channels.

    Args:
        width: token width d.
        layers: CFSA blocks.
        heads: attention heads.
        patch_size: patch side in pixels.
        image_size: input side in pixels (multiple of the patch size).
        embed_dim: joint embedding width E of the projected class token.
        drop_path_rate: stochastic depth of the last block.
        backend: attention backend.
    """

    def __init__(self, *, width: int, layers: int, heads: int, patch_size: int, image_size: int,
                 embed_dim: int, drop_path_rate: float = 0.0, backend: str = "sdpa") -> None:
        super().__init__()
        grid = image_size // patch_size
        scale = width ** -0.5
        self.conv0 = nn.Conv2d(IFNS_PLANES, IFNS_PLANES, kernel_size=1, bias=False)
        self.conv1 = nn.Conv2d(IFNS_PLANES, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = CFSATransformer(width, layers, heads, drop_path_rate=drop_path_rate,
                                           backend=backend)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed_dim))
        self.init_new_modules()

    def init_new_modules(self) -> None:
        """Initialises what CFSA/IFNS add to CLIP: identity ``conv0``, truncated-normal messages."""
        with torch.no_grad():
            self.conv0.weight.copy_(torch.eye(IFNS_PLANES).view(IFNS_PLANES, IFNS_PLANES, 1, 1))
        for block in self.transformer.resblocks:
            for module in block.message_modules():
                init_new_module(module)

    def new_modules(self) -> list[nn.Module]:
        """Modules trained from scratch: the IFNS mix and every block's message layers."""
        return [self.conv0] + [m for b in self.transformer.resblocks for m in b.message_modules()]

    def patch_embed(self, x: Tensor) -> Tensor:
        """IFNS mix and patch embedding, ``conv1(conv0(x))``: planes [B*T, 3, H, W] -> tokens [B*T, N, d].

        Both convolutions are linear (``conv1`` has kernel = stride = patch, no bias), so they run
        as one matmul of the flattened patches with the composed weight: the same tokens, and no
        gradient of the full-resolution planes in the backward unless they need one (ViT-B/16,
        T = 8, bf16 on CPU: 7 ms forward + backward against 48 ms for the two convolutions).

        Args:
            x: IFNS planes [B*T, 3, H, W], H and W multiples of the patch size.

        Returns:
            patch tokens [B*T, N, d], row-major over the patch grid.
        """
        patch = self.conv1.kernel_size[0]
        weight = torch.einsum("dchw,ci->dihw", self.conv1.weight, self.conv0.weight.flatten(1))
        x = x.unflatten(2, (-1, patch)).unflatten(4, (-1, patch))  # [B*T, 3, g, p, g, p]
        x = x.permute(0, 2, 4, 1, 3, 5).flatten(3).flatten(1, 2)  # [B*T, N, 3 p p]
        return F.linear(x, weight.flatten(1))

    def forward(self, x: Tensor, num_frames: int) -> tuple[Tensor, Tensor]:
        """Frames x [B*T, 3, H, W] -> (class features [B*T, E], patch tokens [B*T, N, d])."""
        x = self.patch_embed(x)  # [B*T, N, d]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # [B*T, L, d]
        x = self.transformer(self.ln_pre(x), num_frames)
        return self.ln_post(x[:, 0]) @ self.proj, x[:, 1:]


def init_new_module(module: nn.Module) -> None:
    """Initialisation of layers trained from scratch (X-CLIP): truncated-normal Linear weights,
    zero biases, unit LayerNorms, Xavier attention input projections."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=NEW_MODULE_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, Attention):
            nn.init.xavier_uniform_(m.in_proj_weight)
            if m.in_proj_bias is not None:
                nn.init.zeros_(m.in_proj_bias)
