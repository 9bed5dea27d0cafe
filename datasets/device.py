"""The device end of the data path: a collated batch moved to the model's device.

Items of an :class:`~datasets.items.ItemBuilder` with ``crop_on_device`` hold the decoded frames
uncropped; :func:`to_device` maps their luma levels, crops, resizes, flips (one ``grid_sample``,
OpenCV's bilinear sample positions, :func:`~datasets.transforms.crop_resize_torch`) and jitters
them, rounds to uint8 and gathers the windows, so every batch reaches the input encoder as the
same ``frames`` uint8 ``[B, (V,) T, F, 1, S, S]``.
"""
from __future__ import annotations

from typing import Mapping

import torch

from datasets.transforms import apply_jitter_torch, crop_resize_torch
from utils.misc import PIXEL_MAX

CROP_KEYS = ("windows", "boxes", "levels", "jitter", "size")  # fields consumed by the device crop


def to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch on ``device``, with ``frames`` ready for the input encoder.

    Args:
        batch: a :class:`~datasets.dataset.ClipCollate` batch.
        device: the model's device.
    """
    out = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
    if "boxes" in batch:
        out["frames"] = crop_windows(out["frames"], out["windows"], out["boxes"], out["levels"],
                                     int(batch["size"]), out.get("jitter"))
        for key in CROP_KEYS:
            out.pop(key, None)
    return out


def crop_windows(frames: torch.Tensor, positions: torch.Tensor, boxes: torch.Tensor, levels: torch.Tensor,
                 size: int, jitter: torch.Tensor | None = None) -> torch.Tensor:
    """Window frames cropped on the frames' device: gray = levels of the frames (clamped to
    0..255), :func:`~datasets.transforms.crop_resize_torch` of every box, the jitter, rounded to
    uint8, the windows gathered. Equals the workers' uint8 windows up to the rounding of the
    resize (float arithmetic here, OpenCV's fixed point there).

    Each view resizes either all U frames of its clip item (then gathers its windows) or only its
    own T F window frames (gathered first), whichever is fewer: several test clips per item make U
    larger than one view's windows.

    Args:
        frames: uint8 ``[B, U, H, W]`` decoded frames of each clip (zero-padded along U).
        positions: int64 ``[B, T, F]`` (one view) or ``[B, V, T, F]``: the window frames of every
            sampled t as positions along U.
        boxes: int64 ``[B, 5]`` or ``[B, V, 5]`` crop boxes (:meth:`~datasets.transforms.CropBox.as_array`).
        levels: float32 ``[B, 2]`` (scale, offset) with gray = scale * frame + offset.
        size: output side S.
        jitter: float32 ``[B, 2]`` brightness and contrast per sample, or None.

    Returns:
        uint8 ``[B, T, F, 1, S, S]`` or ``[B, V, T, F, 1, S, S]``.
    """
    single = positions.dim() == 3
    if single:
        positions, boxes = positions[:, None], boxes[:, None]  # [B, 1, T, F], [B, 1, 5]
    batch, views, count, window = positions.shape
    device, per_view = frames.device, count * window
    if batch == 0:  # every sample of the batch was skipped
        windows = torch.zeros((0, views, count, window, size, size), dtype=torch.uint8, device=device)
    else:
        positions = positions.to(device)
        scale, offset = levels.to(device, torch.float32).unbind(-1)  # [B] each
        if frames.shape[1] > per_view:  # resize each view's window frames only
            rows = torch.arange(batch, device=device)[:, None]  # [B, 1]
            picked = frames[rows, positions.reshape(batch, views * per_view)]  # [B, V * T * F, H, W]
            picked = picked.view(batch * views, per_view, *frames.shape[2:])  # [B * V, T * F, H, W]
            gray = _levels_to_gray(picked, scale.repeat_interleave(views), offset.repeat_interleave(views))
            crops = crop_resize_torch(gray, boxes.reshape(batch * views, 1, -1), size)  # [B * V, 1, T * F, S, S]
        else:  # resize the clip's frames once per view, then gather the windows
            resized = crop_resize_torch(_levels_to_gray(frames, scale, offset), boxes, size)  # [B, V, U, S, S]
            index = positions.reshape(batch, views, per_view, 1, 1).expand(-1, -1, -1, size, size)
            crops = torch.gather(resized, 2, index)  # [B, V, T * F, S, S]
        crops = crops.reshape(batch, views * per_view, size, size)
        if jitter is not None:
            crops = apply_jitter_torch(crops, jitter.to(device))
        windows = crops.round_().clamp_(0, PIXEL_MAX).to(torch.uint8).view(batch, views, count, window, size, size)
    windows = windows.unsqueeze(-3)  # [B, V, T, F, 1, S, S]
    return windows[:, 0] if single else windows


def _levels_to_gray(frames: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """float32 gray ``clamp(scale * frames + offset, 0, 255)`` of uint8 frames ``[N, ...]`` with
    one ``scale`` and ``offset`` ``[N]`` per row."""
    shape = (-1,) + (1,) * (frames.dim() - 1)
    return torch.addcmul(offset.view(shape), frames.float(), scale.view(shape)).clamp_(0.0, PIXEL_MAX)
