"""What a fresh attacker (and the fresh utility model) reads: the attacker's datasets over the shared
data path, the views of the items (frames, the input encoder's output, the frozen model's
features), the compact labels of every privacy label, and the film level the adversary assumes.
Used by ``tools/privacy_attack.py`` and ``tools/utility_model.py``."""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from yacs.config import CfgNode

from datasets import ClipDataset, build_datasets, collate_for, to_device
from datasets.loader import worker_options
from datasets.names import parse_name
from datasets.pairs import clean_config
from datasets.pku import PKU_ATTRIBUTES
from models import build_input_encoder, build_model
from models.encoders import CLIP_MEAN, CLIP_STD, RGBEncoder
from privacy.attackers import AttackError
from utils.image_metrics import psnr, ssim
from utils.misc import PIXEL_MAX

logger = logging.getLogger(__name__)

ALL_ATTRIBUTES = "attributes"  # --label: the five P3AR-PKU attributes at once
ENCODER_KEY = "input_encoder."  # state-dict prefix of the input encoder inside MSPNet

View = Callable[[torch.Tensor], torch.Tensor]  # uint8 frames [B, T, F, C, S, S] -> the attacker's input


def film_level(cfg: CfgNode, override: int | None) -> int:
    """The film level the adversary assumes: ``--level``, else LPS.LEVEL, else the synthetic one."""
    if override is not None:
        return override
    if cfg.LPS.LEVEL:
        return cfg.LPS.LEVEL
    return cfg.DATA.SYNTHETIC.LPS_LEVEL if _reads_degraded_copy(cfg) else 0


def _reads_degraded_copy(cfg: CfgNode) -> bool:
    """Whether the config reads the synthetic set's degraded copy."""
    return not cfg.DATA.ROOT and cfg.DATA.SYNTHETIC.ENABLED and cfg.DATA.SYNTHETIC.SOURCE == "lps"


def camera_device(cfg: CfgNode) -> str:
    """The camera behind the frames the config reads: ``LPS.DEVICE`` when simulated on the fly,
    else the synthetic degraded copy's ``DATA.SYNTHETIC.DEVICE``, else the film."""
    return cfg.DATA.SYNTHETIC.DEVICE if not cfg.LPS.LEVEL and _reads_degraded_copy(cfg) else cfg.LPS.DEVICE


def attacker_dataset(base: ClipDataset, names: list[str]) -> ClipDataset:
    """``base``'s source, film, SPP, restoration and test items over ``names``, one view per video.

    Args:
        base: a test dataset of :func:`datasets.build_datasets` (deterministic sampler and crop).
        names: the videos of one half of the attacker's split.

    Returns:
        A dataset whose items hold ``frames`` uint8 ``[1, T, F, C, S, S]`` (the segment centres,
        the centre crop).
    """
    return ClipDataset(names=names, opener=base.opener, sampler=replace(base.sampler, num_clip=1),
                       builder=replace(base.builder, num_crop=1), seed=base.seed,
                       lps_level=base.lps_level, lps_device=base.lps_device, restoration=base.restoration,
                       skip_bad=base.skip_bad, spp=base.spp)


def planes_view(cfg: CfgNode, checkpoint: dict | None, resume: str) -> nn.Module:
    """The configured input encoder, with its learned parameters from ``checkpoint`` when given."""
    encoder = build_input_encoder(cfg)
    if checkpoint is not None:
        model = checkpoint.get("model", checkpoint)
        state = {k.removeprefix(ENCODER_KEY): v for k, v in model.items() if k.startswith(ENCODER_KEY)}
        if state or list(encoder.state_dict()):
            try:
                encoder.load_state_dict(state)
            except RuntimeError:
                raise AttackError(f"the input-encoder tensors of {resume} ({', '.join(sorted(state)) or 'none'}) "
                                  f"do not fit MODEL.ENCODER {cfg.MODEL.ENCODER}; pass the run's config") from None
            logger.info("input encoder %s: %d tensors loaded from %s", cfg.MODEL.ENCODER, len(state), resume)
    elif list(encoder.parameters()):
        logger.warning("input encoder %s has learned parameters but no --resume was given: "
                       "attacking its initial parameters", cfg.MODEL.ENCODER)
    return encoder


def feature_model(cfg: CfgNode, checkpoint: dict | None, class_names: list[str]) -> nn.Module:
    """The trained MSPNet of ``checkpoint``, frozen."""
    if checkpoint is None:
        raise AttackError("--target features needs --resume CKPT (the trained model to freeze)")
    model = build_model(cfg, class_names)
    model.load_state_dict(checkpoint["model"])
    return model.requires_grad_(False)


def heads_of(label: str) -> tuple[str, ...]:
    """The privacy labels ``--label`` names (``attributes``: the five of P3AR-PKU)."""
    return tuple(PKU_ATTRIBUTES) if label == ALL_ATTRIBUTES else (label,)


def compact_labels(names: list[str], heads: tuple[str, ...], identities: list[int]) -> dict[str, dict[int, int]]:
    """Per label, its values (identity: those of the split) -> the attacker's compact classes.

    Args:
        names: the attacker's videos (both halves).
        heads: the labels learned.
        identities: the identities of the split (present in both halves).
    """
    labels = [parse_name(name).privacy_labels for name in names]
    return {head: {value: i for i, value in enumerate(
        identities if head == "identity" else sorted({lab[head] for lab in labels}))} for head in heads}


@torch.no_grad()
def read_views(dataset: ClipDataset, view: View, label_of: dict[str, dict[int, int]], *, batch_size: int,
               num_workers: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Every video of ``dataset`` as the attacker sees it.

    Args:
        dataset: an :func:`attacker_dataset`.
        view: turns a batch of the items' frames (on ``device``) into the attacker's input.
        label_of: per learned label, its value -> compact attacker class.
        batch_size: videos per batch.
        num_workers: data-loader workers.
        device: where ``view`` runs.

    Returns:
        ``(x, y)``: float32 x [N, T, 3, S, S] or [N, E] on the CPU, int64 labels y [N, G], one
        column per label (videos skipped as unreadable under ``DATA.SKIP_BAD`` are left out).
    """
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_for(dataset),
                        **worker_options(num_workers, persistent=False))
    xs, ys = [], []
    for batch in loader:
        if not len(batch["index"]):  # every video of the batch was unreadable
            continue
        frames = to_device(batch, device)["frames"][:, 0]  # the one view: [B, T, F, C, S, S]
        xs.append(view(frames).float().cpu())
        ys.append(torch.stack([batch[head].apply_(compact.__getitem__) for head, compact in label_of.items()], 1))
    read = sum(len(y) for y in ys)
    if read < len(dataset):
        logger.warning("%d of %d videos were unreadable and are left out", len(dataset) - read, len(dataset))
    return torch.cat(xs), torch.cat(ys)


def has_clean_reference(cfg: CfgNode, restored: bool) -> bool:
    """Whether the clean frames behind the camera frames the config reads exist and differ from them:
    the synthetic set (its raw copy) or a clean source under an on-the-fly camera (``LPS.LEVEL``),
    with a camera, SPP or a restoration between them (recorded data has no clean copy)."""
    synthetic = cfg.DATA.SYNTHETIC.ENABLED and not cfg.DATA.ROOT
    degraded = restored or cfg.LPS.LEVEL > 0 or cfg.SPP.ENABLED or film_level(cfg, None) > 0
    return degraded and (synthetic or cfg.LPS.LEVEL > 0)


def clean_views(cfg: CfgNode, names: list[str], label_of: dict[str, dict[int, int]], *, batch_size: int,
                device: torch.device) -> torch.Tensor:
    """The clean frames of ``names`` in the frame attacker's view (:class:`RGBEncoder` output, the
    same frames and crop as :func:`attacker_dataset` takes), read through :func:`datasets.pairs.clean_config`.

    Returns:
        float32 [N, T, 3, S, S].
    """
    splits = build_datasets(clean_config(cfg), request=RGBEncoder.request, crop_on_device=False)
    return read_views(attacker_dataset(splits.val, names), RGBEncoder(), label_of, batch_size=batch_size,
                      num_workers=cfg.DATA.NUM_WORKERS, device=device)[0]


def _unit_frames(views: torch.Tensor) -> torch.Tensor:
    """CLIP-normalised views [N, T, 3, S, S] -> frames [N * T, 3, S, S] in [0, 1] on the uint8 grid."""
    mean = torch.tensor(CLIP_MEAN)[:, None, None]
    std = torch.tensor(CLIP_STD)[:, None, None]
    unit = (views.flatten(0, 1).double() * std + mean).clamp(0, 1)
    return (unit * PIXEL_MAX).round() / PIXEL_MAX


def frame_fidelity(views: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """PSNR (dB) and SSIM of the attacker's frames against the clean ones, averaged over every frame.

    Args:
        views: the attacked frames as the frame view gives them (CLIP-normalised) [N, T, 3, S, S].
        clean: the same videos' clean frames in the same view.
    """
    x, y = _unit_frames(views), _unit_frames(clean)
    return {"psnr": float(psnr(x, y).mean()), "ssim": float(ssim(x, y).mean()), "fidelity_frames": len(x)}
