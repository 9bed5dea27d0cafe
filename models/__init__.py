"""MSPNet model: input encoders (IFNS, baselines, STPrivacy), CLIP towers with CFSA, temporal fusion, video
prompts, weight loading.

The only entry points that read the config are :func:`build_input_encoder` and :func:`build_model`.
"""
from __future__ import annotations

import logging
import os

from yacs.config import CfgNode

from models.clip import CLIP_SIZES, ClipSize
from torch import nn

from models.bdq import BDQEncoder
from models.encoders import DownsampleEncoder, FrameRequest, RGBEncoder
from models.ifns import IFNSEncoder, PlaneNorm
from models.mspnet import MSPNet
from models.pretrained import load_pretrained
from models.stprivacy import STPrivacyEncoder
from utils.paths import resolve_path
from utils.errors import UserError

logger = logging.getLogger(__name__)

__all__ = ["ENCODERS", "RANDOM_INIT", "FrameRequest", "MSPNet", "build_input_encoder", "build_model", "clip_size"]

RANDOM_INIT = ("", "none")  # MODEL.PRETRAINED values that mean random init
ENCODERS = ("ifns", "rgb", "downsample", "bdq", "stprivacy")  # MODEL.ENCODER choices


def build_input_encoder(cfg: CfgNode) -> nn.Module:
    """The input encoder of ``MODEL.ENCODER`` (see :mod:`models.encoders`); the dataset reads its
    ``request`` to know which raw frames to hand over.

    Args:
        cfg: the experiment config (reads MODEL.ENCODER, MODEL.DOWNSAMPLE_SIZE, MODEL.STPRIVACY.*,
            MODEL.ATTN_BACKEND, DATA.FD_STRIDE, DATA.PLANE_MEAN, DATA.PLANE_STD, DATA.LAYOUT,
            DATA.NUM_FRAMES, DATA.INPUT_SIZE).

    Raises:
        UserError: a baseline encoder with the precomputed layout, which holds IFNS planes only.
    """
    name = cfg.MODEL.ENCODER
    if name == "ifns":
        return IFNSEncoder(cfg.DATA.FD_STRIDE, PlaneNorm.from_lists(cfg.DATA.PLANE_MEAN, cfg.DATA.PLANE_STD),
                           precomputed=cfg.DATA.LAYOUT == "precomputed")
    if cfg.DATA.LAYOUT == "precomputed":
        raise UserError(f"MODEL.ENCODER {name} reads frames, but DATA.LAYOUT precomputed holds IFNS "
                        "planes only; use MODEL.ENCODER ifns or a layout with frames")
    if name == "rgb":
        return RGBEncoder()
    if name == "downsample":
        return DownsampleEncoder(cfg.MODEL.DOWNSAMPLE_SIZE)
    if name == "stprivacy":
        st = cfg.MODEL.STPRIVACY
        return STPrivacyEncoder(image_size=cfg.DATA.INPUT_SIZE, num_frames=cfg.DATA.NUM_FRAMES, patch=st.PATCH,
                                width=st.WIDTH, layers=st.LAYERS, prune_layers=tuple(st.PRUNE_LAYERS),
                                keep_ratio=st.KEEP_RATIO, ratio_weight=st.RATIO_WEIGHT,
                                backend=cfg.MODEL.ATTN_BACKEND)
    return BDQEncoder()


def clip_size(cfg: CfgNode) -> ClipSize:
    """The CLIP tower sizes of ``MODEL.ARCH`` (``custom`` reads ``MODEL.CUSTOM.*``)."""
    if cfg.MODEL.ARCH != "custom":
        return CLIP_SIZES[cfg.MODEL.ARCH]
    custom = cfg.MODEL.CUSTOM
    return ClipSize(embed_dim=custom.EMBED_DIM, width=custom.WIDTH, layers=custom.LAYERS,
                    patch_size=custom.PATCH_SIZE, image_size=cfg.DATA.INPUT_SIZE,
                    text_width=custom.TEXT_WIDTH, text_layers=custom.TEXT_LAYERS,
                    context_length=custom.CONTEXT_LENGTH)


def build_model(cfg: CfgNode, class_names: list[str]) -> MSPNet:
    """Builds MSPNet from the config, loads ``MODEL.PRETRAINED`` and applies ``MODEL.FREEZE``.

    Args:
        cfg: the experiment config (reads MODEL.*, DATA.NUM_FRAMES, DATA.INPUT_SIZE,
            MODEL.PRIVACY_HEADS / PRIVACY_CLASSES, TRAIN.USE_CHECKPOINT).
        class_names: the K action class names, in label order.

    Returns:
        The model on the CPU.

    Raises:
        UserError: an input size that is not a multiple of the patch size, or a missing or
            unfitting ``MODEL.PRETRAINED`` file.
    """
    size = clip_size(cfg)
    if cfg.DATA.INPUT_SIZE % size.patch_size:
        raise UserError(f"DATA.INPUT_SIZE {cfg.DATA.INPUT_SIZE} is not a multiple of the "
                        f"{cfg.MODEL.ARCH} patch size {size.patch_size}")
    encoder = build_input_encoder(cfg)
    model = MSPNet(size=size, image_size=cfg.DATA.INPUT_SIZE, num_frames=encoder.request.output_frames(cfg.DATA.NUM_FRAMES),
                   class_names=class_names,
                   privacy_heads=dict(zip(cfg.MODEL.PRIVACY_HEADS, cfg.MODEL.PRIVACY_CLASSES)),
                   temporal_layers=cfg.MODEL.TEMPORAL_LAYERS, prompt_layers=cfg.MODEL.PROMPT_LAYERS,
                   prompt_alpha=cfg.MODEL.PROMPT_ALPHA, drop_path_rate=cfg.MODEL.DROP_PATH_RATE,
                   backend=cfg.MODEL.ATTN_BACKEND, input_encoder=encoder)
    model.set_grad_checkpointing(cfg.TRAIN.USE_CHECKPOINT)
    pretrained = cfg.MODEL.PRETRAINED
    if pretrained.lower() in RANDOM_INIT:
        logger.info("MSPNet %s: random init (MODEL.PRETRAINED %r)", cfg.MODEL.ARCH, pretrained)
    else:
        path = resolve_path(pretrained)
        if not os.path.isfile(path):
            raise UserError(f"MODEL.PRETRAINED file not found: {pretrained}; pass a local file "
                            "(--pretrained FILE) or MODEL.PRETRAINED none for random init "
                            "(nothing is downloaded)")
        load_pretrained(model, path, allow_pickle=cfg.MODEL.ALLOW_PICKLE)
    model.freeze(list(cfg.MODEL.FREEZE))
    return model
