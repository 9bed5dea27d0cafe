"""Dense DINO ViT features and privacy templates: the matcher of Selective Privacy Preservation
(Ilic et al., CVPR 2024; their ``matcher/extractor.py`` after Amir et al.'s dino-vit-features).

A frame is resized (short side ``input_size``, each side a multiple of the patch), normalised with
the ImageNet statistics DINO was trained with, and run through a timm DINO ViT up to block
``layer``; the descriptor of every patch is that block's ``key`` (or ``query``, ``value``: the
heads' vectors concatenated as the release lays them out, feature-major then head) or its output
``token``. The patch stride may be smaller than the patch (the release uses ViT-S/8 with stride 4):
the grid is then ``1 + (side - patch) // stride`` and the position embedding is resampled to it.

A template is the descriptor of what to hide (a 1-D tensor, the release's ``output/descriptors``
files) or a stack of them ``[K, D]``. The saliency of a patch is the paper's
``mean_k max(0, cos(template_k, patch))`` (``combine="max"``: the largest instead of the mean).

Weights never come from the network: :func:`load_dino_weights` reads a local file (the DINO
release's backbone checkpoint or timm's weights of the same architecture).
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from utils.errors import UserError
from utils.misc import PIXEL_MAX

logger = logging.getLogger(__name__)

# the release's model choices, as timm names (DINO's ViT-S/8, ViT-S/16, ViT-B/8, ViT-B/16)
DINO_ARCHS = ("vit_small_patch8_224.dino", "vit_small_patch16_224.dino", "vit_base_patch8_224.dino",
              "vit_base_patch16_224.dino")
FACETS = ("key", "query", "value", "token")  # the release's descriptor choices ("key": the paper's)
QKV_INDEX = {"query": 0, "key": 1, "value": 2}  # position in timm's fused qkv projection
COMBINES = ("mean", "max")  # over templates: the paper's mean, or the largest similarity
PREFIXES = ("module.", "backbone.")  # wrappers of DINO's training checkpoints (DDP, the backbone)
NESTED_KEYS = ("teacher", "state_dict", "model")  # where a full training checkpoint keeps its weights
HEAD_PREFIX = "head."  # a classifier or projection head: not part of the feature extractor
TEMPLATE_DIMS = (1, 2)  # a template file holds [D] (one template) or [K, D]


class DinoFeatures(nn.Module):
    """Dense patch descriptors of a timm DINO ViT (random weights until :func:`load_dino_weights`).

    Args:
        arch: one of :data:`DINO_ARCHS`.
        stride: patch stride in pixels (divides the patch size; smaller = denser grid).
        layer: block whose facet is read (0-based; the release reads 11, the last of ViT-S/B).
        facet: one of :data:`FACETS`.
        input_size: short side, in pixels, of the frames fed to the ViT.
        random_init: timm's random initialisation (tests); False: the parameters are placeholders
            (on the meta device, nothing allocated) until :func:`load_dino_weights` assigns a file's.

    Raises:
        UserError: a stride, layer, facet or input size the architecture cannot take.
    """

    def __init__(self, arch: str, *, stride: int, layer: int, facet: str, input_size: int,
                 random_init: bool = False) -> None:
        super().__init__()
        import timm  # imported here: importing timm takes seconds and most runs need no ViT

        if arch not in DINO_ARCHS:
            raise UserError(f"SPP.ARCH {arch!r} is not one of {', '.join(DINO_ARCHS)}")
        with torch.device("cpu" if random_init else "meta"):  # a file's weights replace the init: skip it
            self.vit = timm.create_model(arch, pretrained=False, num_classes=0, dynamic_img_size=True)
        self.patch = self.vit.patch_embed.patch_size[0]
        if stride < 1 or self.patch % stride:
            raise UserError(f"SPP.STRIDE {stride} must divide the patch size {self.patch} of {arch}")
        if not 0 <= layer < len(self.vit.blocks):
            raise UserError(f"SPP.LAYER {layer} is not a block of {arch} (0 to {len(self.vit.blocks) - 1})")
        if facet not in FACETS:
            raise UserError(f"SPP.FACET {facet!r} is not one of {', '.join(FACETS)}")
        if input_size < self.patch:
            raise UserError(f"SPP.INPUT_SIZE {input_size} is smaller than the patch size {self.patch}")
        self.vit.patch_embed.proj.stride = (stride, stride)
        self.arch, self.stride, self.layer, self.facet, self.input_size = arch, stride, layer, facet, input_size
        cfg = self.vit.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    @property
    def dim(self) -> int:
        """Descriptor length D."""
        return self.vit.embed_dim

    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        """The ViT's input size for a ``height`` x ``width`` frame: short side ``input_size``, the
        long side scaled alike, both rounded to a multiple of the patch (timm's patch embedding
        takes whole patches only)."""
        scale = self.input_size / min(height, width)
        return tuple(max(self.patch, round(side * scale / self.patch) * self.patch) for side in (height, width))

    def grid_shape(self, height: int, width: int) -> tuple[int, int]:
        """The descriptor grid ``(h, w)`` of a ``height`` x ``width`` frame."""
        return tuple(1 + (side - self.patch) // self.stride for side in self.input_shape(height, width))

    @torch.no_grad()
    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """Descriptors of uint8 frames ``[N, 3, H, W]``: float32 ``[N, h, w, D]``."""
        if self.vit.cls_token.is_meta:
            raise RuntimeError("DinoFeatures has no weights: call load_dino_weights first (or random_init=True)")
        x = rgb.to(self.mean.device, torch.float32) / PIXEL_MAX
        x = F.interpolate(x, size=self.input_shape(*rgb.shape[-2:]), mode="bilinear", antialias=True,
                          align_corners=False)
        x = self.vit.patch_embed((x - self.mean) / self.std)  # [N, h, w, C] (dynamic size: NHWC)
        n, h, w, _ = x.shape
        x = self.vit.norm_pre(self.vit._pos_embed(x))  # [N, 1 + h*w, C], position embedding resampled
        for block in self.vit.blocks[:self.layer]:
            x = block(x)
        block = self.vit.blocks[self.layer]
        if self.facet == "token":
            out = block(x)
        else:
            heads = block.attn.num_heads
            qkv = block.attn.qkv(block.norm1(x))  # [N, T, 3C]
            out = qkv.view(n, x.shape[1], len(QKV_INDEX), heads, -1)[:, :, QKV_INDEX[self.facet]]  # [N, T, H, C/H]
            out = out.transpose(-1, -2).flatten(2)  # [N, T, C]: feature-major, then head (the release's order)
        return out[:, self.vit.num_prefix_tokens:].reshape(n, h, w, -1)


def _unwrap_state(state: object, path: str) -> dict[str, torch.Tensor]:
    """The backbone's tensors from a plain state dict or a DINO training checkpoint."""
    for key in NESTED_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} holds no state dict of tensors; pass the DINO ViT weights file")
    out = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            key = key.removeprefix(prefix)
        if not key.startswith(HEAD_PREFIX):
            out[key] = value
    return out


def load_dino_weights(model: DinoFeatures, path: str | os.PathLike) -> None:
    """Loads a local DINO ViT weights file into ``model`` (every backbone tensor, nothing else).

    Accepts the DINO release's backbone files (``dino_deitsmall8_pretrain.pth`` ...), their full
    training checkpoints (the ``teacher``), and timm's weights of the same architecture
    (``.pth``/``.bin`` or ``.safetensors``); heads are dropped.

    Args:
        model: the feature extractor.
        path: the weights file.

    Raises:
        UserError: a missing or unreadable file, or tensors that do not fit the architecture.
    """
    path = str(path)
    if not Path(path).is_file():
        raise UserError(f"DINO weights file {path} not found; pass a local file (SPP.WEIGHTS or --weights)")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a file torch cannot read: say which, in one line
        raise UserError(f"cannot read DINO weights {path} ({type(exc).__name__}); pass a torch or "
                        "safetensors state dict") from None
    state = _unwrap_state(state, path)
    try:
        missing, unexpected = model.vit.load_state_dict(state, strict=False, assign=True)
    except RuntimeError:  # tensors of the wrong shape: another architecture
        raise UserError(f"DINO weights {path} do not fit SPP.ARCH {model.arch} (tensor shapes differ); "
                        "set SPP.ARCH to the file's architecture") from None
    if missing or unexpected:
        raise UserError(f"DINO weights {path} do not fit SPP.ARCH {model.arch}: {len(missing)} missing "
                        f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}) tensors")
    model.requires_grad_(False)  # the assigned tensors keep the file's flags
    logger.info("DINO %s: %d tensors loaded from %s", model.arch, len(state), path)


def load_templates(path: str | os.PathLike, dim: int | None = None) -> torch.Tensor:
    """Privacy templates of a file: float32 ``[K, D]`` (a 1-D file is one template).

    Args:
        path: a tensor saved with ``torch.save`` (:func:`save_templates`, or a release descriptor).
        dim: the descriptor length the matcher gives, checked when given.

    Raises:
        UserError: a missing file, not a 1-D or 2-D tensor, or the wrong length.
    """
    path = str(path)
    if not Path(path).is_file():
        raise UserError(f"template file {path} not found; make one with tools/make_spp_template.py")
    try:
        templates = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read template file {path} ({type(exc).__name__}); it must be a saved tensor") from None
    if not isinstance(templates, torch.Tensor) or templates.dim() not in TEMPLATE_DIMS or not templates.numel():
        raise UserError(f"template file {path} must hold a tensor [D] or [K, D]")
    templates = templates.float().reshape(-1, templates.shape[-1])
    if dim is not None and templates.shape[1] != dim:
        raise UserError(f"templates of {path} have length {templates.shape[1]}, but SPP.ARCH / SPP.FACET "
                        f"descriptors have {dim}; make them with the same settings")
    return templates


def save_templates(path: str | os.PathLike, templates: torch.Tensor) -> None:
    """Writes templates ``[K, D]`` with ``torch.save`` atomically (tmp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(templates.detach().float().cpu().contiguous(), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def cell_centres(grid: int, side: int) -> torch.Tensor:
    """Frame coordinates (pixels) of the centres of ``grid`` descriptor cells along a ``side``
    long axis, as :func:`upsample` places them (cell j covers ``[j, j + 1) * side / grid``)."""
    return (torch.arange(grid, dtype=torch.float32) + 0.5) * side / grid


def box_cells(box: tuple[float, float, float, float], grid: tuple[int, int],
              frame_size: tuple[int, int]) -> torch.Tensor:
    """bool ``[h, w]``: the descriptor cells whose centres lie in ``box``.

    Args:
        box: ``(x0, y0, x1, y1)`` in frame pixels (x1, y1 exclusive).
        grid: the descriptor grid ``(h, w)``.
        frame_size: the frame's ``(H, W)``.
    """
    x0, y0, x1, y1 = box
    ys, xs = cell_centres(grid[0], frame_size[0]), cell_centres(grid[1], frame_size[1])
    return ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]


def region_template(features: torch.Tensor, box: tuple[float, float, float, float],
                    frame_size: tuple[int, int]) -> torch.Tensor:
    """The mean descriptor ``[D]`` of the cells whose centres lie in ``box``.

    Args:
        features: one frame's descriptors ``[h, w, D]``.
        box: ``(x0, y0, x1, y1)`` in frame pixels (x1, y1 exclusive).
        frame_size: the frame's ``(H, W)``.

    Raises:
        UserError: a box that holds no cell centre.
    """
    cells = box_cells(box, features.shape[:2], frame_size)
    if not cells.any():
        raise UserError(f"box {box} holds no descriptor cell centre (cells are about "
                        f"{frame_size[1] / features.shape[1]:.1f} px wide); draw a larger box")
    return features[cells].mean(0)


def similarity(features: torch.Tensor, templates: torch.Tensor, combine: str = "mean") -> torch.Tensor:
    """The saliency of every cell: ``combine_k max(0, cos(template_k, cell))``.

    Args:
        features: descriptors ``[N, h, w, D]``.
        templates: ``[K, D]``.
        combine: ``mean`` (the paper) or ``max`` over the K templates.

    Returns:
        float32 ``[N, h, w]`` in [0, 1].
    """
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
    cos = F.normalize(features.float(), dim=-1) @ F.normalize(templates.float().to(features.device), dim=-1).T
    cos = cos.clamp(min=0)  # [N, h, w, K]
    return cos.mean(-1) if combine == "mean" else cos.amax(-1)


def upsample(saliency: torch.Tensor, frame_size: tuple[int, int]) -> torch.Tensor:
    """Cell saliency ``[N, h, w]`` bilinearly resized to the frame: ``[N, H, W]`` (the release
    resizes the grid map to the image size the same way)."""
    return F.interpolate(saliency[:, None], size=frame_size, mode="bilinear", align_corners=False)[:, 0]
