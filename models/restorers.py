"""Restoration networks of the learned reconstruction attack: sealed RGB frames in, clean frames out.

Both predict a residual: ``restored = sealed + net(sealed)`` on frames in [0, 1] (clamp at use);
the output convolution starts at zero, so an untrained network is the identity.
Inputs of any size are padded (reflect) to a multiple of the network's total downsampling and the
output is cropped back.

- :class:`UNet`: the baseline (Ronneberger et al., MICCAI 2015): per level ``blocks[i]`` double
  3x3 convolutions with ReLU, 2x2 max-pool down, 2x2 transposed convolution up, skip concatenation.
- :class:`Restormer`: a small Restormer (Zamir et al., CVPR 2022; the release's choice for this
  attack), written from the paper: a 3x3 patch embedding, an encoder-decoder of transformer
  blocks whose attention is **MDTA** (multi-Dconv head transposed attention: 1x1 then depthwise
  3x3 convolutions give Q, K, V; attention is across channels, ``softmax(Q^ K^T * t) V`` with Q and
  K L2-normalised over the pixels and a learned temperature t per head, so its cost is linear in
  the pixels and its context is the whole frame) and whose feed-forward is **GDFN** (gated
  depthwise feed-forward: ``W_o (GELU(D1 W1 x) * D2 W2 x)``, hidden width ``expansion * C``);
  pre-norm with a per-pixel LayerNorm over channels; pixel-unshuffle down and pixel-shuffle up;
  skip concatenation reduced by 1x1 convolutions except at the top level, which keeps ``2C``
  channels for the decoder and the refinement blocks, then a 3x3 output convolution.

Only :func:`build_restorer` and :func:`restorer_from_checkpoint` know the architecture names;
the modules take typed keyword arguments.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.convert import CheckpointError, load_checkpoint_file

logger = logging.getLogger(__name__)

RESTORER_ARCHS = ("unet", "restormer")
RESTORER_FORMAT = "lps_har.restorer"  # the ``format`` entry of tools/train_restorer.py checkpoints
FFN_EXPANSION = 2.66  # GDFN hidden width / channels (the paper's value)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pads [N, C, H, W] at the bottom and right to multiples of ``multiple`` (reflect when it
    fits, else replicate)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def zero_init(conv: nn.Conv2d) -> nn.Conv2d:
    """Zeroes a residual output convolution, so an untrained restorer returns its input (training
    starts from the sealed frames instead of from a random residual)."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def _check_levels(blocks: Sequence[int], heads: Sequence[int] | None = None) -> None:
    if not blocks or min(blocks) < 1:
        raise ValueError(f"blocks needs one positive count per level, got {list(blocks)}")
    if heads is not None and len(heads) != len(blocks):
        raise ValueError(f"heads needs one count per level ({len(blocks)}), got {list(heads)}")


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions with ReLU (the U-Net unit).

    Args:
        in_channels: input channels.
        out_channels: output channels.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """U-Net restorer with a residual output.

    Args:
        channels: image channels.
        width: channels of the first level (doubled per level).
        blocks: double convolutions per level, top first (its length is the number of levels).
    """

    def __init__(self, *, channels: int = 3, width: int = 16, blocks: Sequence[int] = (1, 1, 1)) -> None:
        super().__init__()
        _check_levels(blocks)
        widths = [width * 2 ** i for i in range(len(blocks))]
        self.encoders = nn.ModuleList(
            nn.Sequential(DoubleConv(channels if i == 0 else widths[i - 1], widths[i]),
                          *[DoubleConv(widths[i], widths[i]) for _ in range(blocks[i] - 1)])
            for i in range(len(blocks)))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                 for i in range(len(blocks) - 1))
        self.decoders = nn.ModuleList(
            nn.Sequential(DoubleConv(2 * widths[i], widths[i]),
                          *[DoubleConv(widths[i], widths[i]) for _ in range(blocks[i] - 1)])
            for i in range(len(blocks) - 1))
        self.head = zero_init(nn.Conv2d(width, channels, 1))
        self.multiple = 2 ** (len(blocks) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] sealed frames in [0, 1] -> restored frames (not clamped)."""
        h, w = x.shape[-2:]
        y = _pad_to_multiple(x, self.multiple)
        skips = []
        for i, encoder in enumerate(self.encoders):
            y = encoder(y if i == 0 else F.max_pool2d(y, 2))
            skips.append(y)
        for i in reversed(range(len(self.ups))):
            y = self.decoders[i](torch.cat([self.ups[i](y), skips[i]], dim=1))
        return x + self.head(y)[..., :h, :w]


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of every pixel of [N, C, H, W] (weight and bias).

    Args:
        channels: C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised [N, C, H, W]."""
        y = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias)
        return y.permute(0, 3, 1, 2)


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention: attention across channels, one map per head.

    Args:
        dim: channels C.
        heads: attention heads (divides C).
        bias: biases of the convolutions.
        fused: ``F.scaled_dot_product_attention`` (default) instead of the written-out reference.
    """

    def __init__(self, dim: int, heads: int, bias: bool = False, fused: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"MDTA: {heads} heads do not divide {dim} channels")
        self.heads = heads
        self.fused = fused
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, C, H, W]."""
        n, c, h, w = x.shape
        q, k, v = (t.reshape(n, self.heads, c // self.heads, h * w)  # [N, heads, C/heads, HW]
                   for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        # unit vectors over the pixels, in float32 (a sum over HW squares can overflow fp16)
        q = F.normalize(q.float(), dim=-1).to(v.dtype)
        k = F.normalize(k.float(), dim=-1).to(v.dtype)
        scale = self.temperature.to(v.dtype)
        if self.fused:
            out = F.scaled_dot_product_attention(q * scale, k, v, scale=1.0)
        else:
            attn = (q @ k.transpose(-2, -1) * scale).softmax(dim=-1)  # [N, heads, C/heads, C/heads]
            out = attn @ v
        return self.project_out(out.reshape(n, c, h, w))


class GDFN(nn.Module):
    """Gated depthwise feed-forward network.

    Args:
        dim: channels C.
        expansion: hidden width / C.
        bias: biases of the convolutions.
    """

    def __init__(self, dim: int, expansion: float = FFN_EXPANSION, bias: bool = False) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, C, H, W]."""
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class TransformerBlock(nn.Module):
    """Pre-norm Restormer block: ``x + MDTA(LN(x))``, then ``x + GDFN(LN(x))``.

    Args:
        dim: channels C.
        heads: MDTA heads.
        expansion: GDFN hidden width / C.
        bias: biases of the convolutions.
        fused: MDTA through scaled_dot_product_attention.
    """

    def __init__(self, dim: int, heads: int, expansion: float = FFN_EXPANSION, bias: bool = False,
                 fused: bool = True) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.attn = MDTA(dim, heads, bias, fused)
        self.norm2 = ChannelLayerNorm(dim)
        self.ffn = GDFN(dim, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, C, H, W]."""
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class Restormer(nn.Module):
    """Small Restormer with a residual output.

    Args:
        channels: image channels.
        width: channels C of the top level (``C * 2^i`` at level i).
        blocks: transformer blocks per encoder level, top first (the decoder mirrors all but the
            last, the latent level).
        heads: MDTA heads per level.
        refinement: blocks after the decoder, at the top level.
        expansion: GDFN hidden width / channels.
        bias: biases of the convolutions (the paper: none).
        fused: MDTA through scaled_dot_product_attention.
    """

    def __init__(self, *, channels: int = 3, width: int = 16, blocks: Sequence[int] = (1, 2, 2),
                 heads: Sequence[int] = (1, 2, 4), refinement: int = 1, expansion: float = FFN_EXPANSION,
                 bias: bool = False, fused: bool = True) -> None:
        super().__init__()
        _check_levels(blocks, heads)
        levels = len(blocks)
        if levels > 1 and width % 2:
            raise ValueError(f"Restormer width must be even to be downsampled, got {width}")
        dims = [width * 2 ** i for i in range(levels)]
        # the top decoder level keeps the concatenation's 2C channels (the paper's design)
        decoder_dims = [2 * width if levels > 1 else width] + dims[1:]

        def stage(dim: int, level: int, count: int) -> nn.Sequential:
            return nn.Sequential(*[TransformerBlock(dim, heads[level], expansion, bias, fused) for _ in range(count)])

        self.patch_embed = nn.Conv2d(channels, width, 3, padding=1, bias=bias)
        self.encoders = nn.ModuleList(stage(dims[i], i, blocks[i]) for i in range(levels))
        self.downs = nn.ModuleList(nn.Sequential(nn.Conv2d(dims[i], dims[i] // 2, 3, padding=1, bias=bias),
                                                 nn.PixelUnshuffle(2)) for i in range(levels - 1))
        self.ups = nn.ModuleList(nn.Sequential(nn.Conv2d(decoder_dims[i + 1], 2 * decoder_dims[i + 1], 3,
                                                         padding=1, bias=bias), nn.PixelShuffle(2))
                                 for i in range(levels - 1))
        self.reduces = nn.ModuleList(nn.Conv2d(decoder_dims[i + 1] // 2 + dims[i], decoder_dims[i], 1, bias=bias)
                                     if i > 0 else nn.Identity() for i in range(levels - 1))
        self.decoders = nn.ModuleList(stage(decoder_dims[i], i, blocks[i]) for i in range(levels - 1))
        self.refinement = stage(decoder_dims[0], 0, refinement)
        self.output = zero_init(nn.Conv2d(decoder_dims[0], channels, 3, padding=1, bias=bias))
        self.multiple = 2 ** (levels - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] sealed frames in [0, 1] -> restored frames (not clamped)."""
        h, w = x.shape[-2:]
        y = self.patch_embed(_pad_to_multiple(x, self.multiple))
        skips = []
        for i, encoder in enumerate(self.encoders):
            y = encoder(y if i == 0 else self.downs[i - 1](y))
            skips.append(y)
        for i in reversed(range(len(self.decoders))):
            y = self.decoders[i](self.reduces[i](torch.cat([self.ups[i](y), skips[i]], dim=1)))
        return x + self.output(self.refinement(y))[..., :h, :w]


def build_restorer(arch: str, **kwargs: Any) -> nn.Module:
    """A restoration network.

    Args:
        arch: unet | restormer.
        **kwargs: the keyword arguments of :class:`UNet` or :class:`Restormer`.

    Raises:
        ValueError: an unknown architecture or bad sizes.
    """
    if arch == "unet":
        return UNet(**kwargs)
    if arch == "restormer":
        return Restormer(**kwargs)
    raise ValueError(f"unknown restorer {arch!r}; choose one of {', '.join(RESTORER_ARCHS)}")


def restorer_from_checkpoint(state: dict[str, Any], source: str = "checkpoint") -> nn.Module:
    """The network of a :mod:`tools.train_restorer` checkpoint dict, weights loaded (strict).

    Args:
        state: the checkpoint dict (``arch``, ``arch_kwargs``, ``model``).
        source: the file it came from (for messages).

    Raises:
        CheckpointError: not a restorer checkpoint, or weights that do not fit its architecture.
    """
    if state.get("format") != RESTORER_FORMAT:
        raise CheckpointError(f"{source} is not a restorer checkpoint of tools/train_restorer.py")
    model = build_restorer(state["arch"], **state["arch_kwargs"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: the weights do not fit {state['arch']} "
                              f"{state['arch_kwargs']} ({str(exc).splitlines()[0]})") from None
    return model


def load_restorer(path: str) -> tuple[nn.Module, dict[str, Any]]:
    """Reads a restorer checkpoint onto the CPU.

    Args:
        path: a ``last.pth`` of tools/train_restorer.py.

    Returns:
        ``(model in eval mode, checkpoint dict)`` (the dict holds ``levels``, ``train_names`` ...).

    Raises:
        CheckpointError: a missing or unreadable file, or not a restorer checkpoint.
    """
    state = load_checkpoint_file(path, allow_pickle=False)
    model = restorer_from_checkpoint(state, path).eval()
    logger.info("restorer %s (%d parameters, trained at film levels %s) loaded from %s", state["arch"],
                sum(p.numel() for p in model.parameters()), state.get("levels"), path)
    return model, state
