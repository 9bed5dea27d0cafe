"""IFNS input: three grayscale planes per sampled frame, derived from one decode.

For a sampled frame index t and stride k (``DATA.FD_STRIDE``), with indices clamped to the clip:

- plane 1, fd(t-1) = |g(t-1) - g(t-1-k)|,
- plane 2, fd(t)   = |g(t) - g(t-k)|,
- plane 3, avg(t)  = mean of g(t-k+1), ..., g(t),

where g is the grayscale of the (degraded) frame. All three planes of all sampled frames need only
the frames t-k-1..t, so :func:`needed_frames` gives the union to decode once.

With ``DATA.PLANES_ON_DEVICE`` the workers return, per sampled t, the uint8 window w of the k + 2
frames t-k-1..t (:func:`window_frames`), and :func:`planes_from_windows` computes on the device
fd(t-1) = |w[k] - w[0]|, fd(t) = |w[k+1] - w[1]| and avg(t) = mean(w[2..k+1]). With
``DATA.CROP_ON_DEVICE`` as well, the workers return the decoded frames uncropped, with the window
positions, the crop boxes and the luma levels, and :func:`planes_from_frames` maps the levels,
crops, resizes and flips on the device before the planes (:class:`DevicePlanes` runs either).

CLIP normalisation of a gray value x (on the 0..1 scale) replicated on the three channels and
averaged after the per-channel normalisation is one affine map:
mean_c((x - m_c) / s_c) = x * mean_c(1 / s_c) - mean_c(m_c / s_c),
that is a per-plane ``(x - mean) / std`` with mean = mean_c(m_c / s_c) / mean_c(1 / s_c) and
std = 1 / mean_c(1 / s_c), the same for the three planes. :class:`PlaneNorm` holds that map, or
per-plane statistics of a dataset (``DATA.PLANE_MEAN`` / ``DATA.PLANE_STD``) for a model trained
from scratch: under CLIP's map the frame-difference planes sit near -1.6 with a spread of 0.08
(most differences are zero), an offset that a randomly initialised patch embedding passes into
every token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np
import torch

from datasets.transforms import apply_jitter_torch, crop_resize_torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PIXEL_MAX = 255.0
GRAY_SCALE = float(np.mean([1.0 / s for s in CLIP_STD]))
GRAY_OFFSET = float(np.mean([m / s for m, s in zip(CLIP_MEAN, CLIP_STD)]))
PLANES = 3  # fd(t-1), fd(t), avg(t)
WINDOW_EXTRA = 2  # a window holds k + 2 frames, t-k-1 .. t


@dataclass(frozen=True)
class PlaneNorm:
    """Per-plane normalisation ``(x / 255 - mean[k]) / std[k]`` of planes on the 0..255 scale.

    Args:
        mean: per-plane mean on the 0..1 scale (fd(t-1), fd(t), avg(t)); the default is CLIP's.
        std: per-plane standard deviation on the 0..1 scale; the default is CLIP's.
    """

    mean: tuple[float, ...] = (GRAY_OFFSET / GRAY_SCALE,) * PLANES
    std: tuple[float, ...] = (1.0 / GRAY_SCALE,) * PLANES

    def __post_init__(self) -> None:
        if len(self.mean) != PLANES or len(self.std) != PLANES:
            raise ValueError(f"plane mean and std need {PLANES} values each, got {self.mean} and {self.std}")
        if min(self.std) <= 0:
            raise ValueError(f"plane std must be positive, got {self.std}")

    @classmethod
    def from_lists(cls, mean: Sequence[float], std: Sequence[float]) -> "PlaneNorm":
        """``DATA.PLANE_MEAN`` / ``DATA.PLANE_STD``: both empty = CLIP's normalisation."""
        if not mean and not std:
            return cls()
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def _scale_offset(self) -> tuple[np.ndarray, np.ndarray]:
        std = np.asarray(self.std, dtype=np.float64)
        scale = (1.0 / (PIXEL_MAX * std)).astype(np.float32)[:, None, None]  # [3, 1, 1]
        offset = (np.asarray(self.mean) / std).astype(np.float32)[:, None, None]
        return scale, offset

    def affine(self) -> list[tuple[float, float]]:
        """Per plane ``(scale, shift)`` of the map ``x * scale + shift`` on the 0..255 scale."""
        scale, offset = self._scale_offset()
        return [(float(s), -float(o)) for s, o in zip(scale.ravel(), offset.ravel())]

    def __call__(self, planes: np.ndarray) -> np.ndarray:
        """planes [..., 3, H, W] on the 0..255 scale -> normalised float32, same shape."""
        scale, offset = self._scale_offset()
        return (planes * scale - offset).astype(np.float32)

    def inverse(self, planes: np.ndarray) -> np.ndarray:
        """Normalised planes [..., 3, H, W] -> the 0..255 scale (for pictures)."""
        scale, offset = self._scale_offset()
        return (planes + offset) / scale


def needed_frames(indices: np.ndarray, stride: int, num_frames: int) -> np.ndarray:
    """The sorted distinct frames (t-k-1..t for every t, clamped) that the planes of ``indices`` read.

    Args:
        indices: sampled frame indices t, any shape.
        stride: the frame-difference stride k.
        num_frames: frames in the clip.
    """
    offsets = np.arange(-stride - 1, 1)  # t-k-1 .. t
    wanted = np.asarray(indices, dtype=np.int64).reshape(-1, 1) + offsets
    return np.unique(np.clip(wanted, 0, num_frames - 1))


def window_frames(indices: np.ndarray, stride: int, num_frames: int) -> np.ndarray:
    """The frames t-k-1, ..., t of every sampled t, clamped to the clip: ``[..., T, k + 2]``.

    Args:
        indices: sampled frame indices t ``[..., T]``.
        stride: the frame-difference stride k.
        num_frames: frames in the clip.
    """
    offsets = np.arange(-stride - 1, 1)  # t-k-1 .. t
    return np.clip(np.asarray(indices, dtype=np.int64)[..., None] + offsets, 0, num_frames - 1)


def window_positions(frame_ids: np.ndarray, indices: np.ndarray, stride: int, num_frames: int) -> np.ndarray:
    """Where the :func:`window_frames` of ``indices`` sit in the sorted ``frame_ids``
    (:func:`needed_frames`): positions ``[..., T, k + 2]``.

    Args:
        frame_ids: the sorted frames read, including the windows' frames.
        indices: sampled frame indices t ``[..., T]``.
        stride: the frame-difference stride k.
        num_frames: frames in the clip.
    """
    return np.searchsorted(frame_ids, window_frames(indices, stride, num_frames))


def planes_from_windows(windows: torch.Tensor, norm: PlaneNorm = PlaneNorm(),
                        jitter: torch.Tensor | None = None) -> torch.Tensor:
    """The normalised planes of frame windows, on the windows' device: ``ifns_planes`` then
    ``norm`` (after ``apply_jitter`` when ``jitter`` is given) to float rounding.

    Args:
        windows: uint8 ``[B, ..., T, k + 2, H, W]`` windows t-k-1..t (:func:`window_frames`).
        norm: the plane normalisation.
        jitter: float32 ``[B, 2]`` brightness and contrast per sample (identity ``(1, 1)`` = none),
            or None.

    Returns:
        float32 ``[B, ..., T, 3, H, W]`` normalised planes.
    """
    stride = windows.shape[-3] - WINDOW_EXTRA
    gray = windows.float()  # [B, ..., T, k + 2, H, W]
    if jitter is not None:
        gray = apply_jitter_torch(gray, jitter.to(gray.device))
    fd_prev = (gray[..., stride, :, :] - gray[..., 0, :, :]).abs()  # [B, ..., T, H, W]
    fd_now = (gray[..., stride + 1, :, :] - gray[..., 1, :, :]).abs()
    avg = gray[..., WINDOW_EXTRA:, :, :].mean(dim=-3)
    planes = torch.stack([fd_prev, fd_now, avg], dim=-3)  # [B, ..., T, 3, H, W]
    scale, shift = torch.tensor(norm.affine(), dtype=planes.dtype, device=planes.device).unbind(-1)
    return torch.addcmul(shift[:, None, None], planes, scale[:, None, None])


def planes_from_frames(frames: torch.Tensor, positions: torch.Tensor, boxes: torch.Tensor,
                       levels: torch.Tensor, size: int, norm: PlaneNorm = PlaneNorm(),
                       jitter: torch.Tensor | None = None) -> torch.Tensor:
    """The normalised planes of whole decoded frames, on the frames' device: the levels map to
    gray (clamped to 0..255), :func:`~datasets.transforms.crop_resize_torch` of every box, the
    windows gathered, then :func:`planes_from_windows`. Equals the planes of the workers' uint8
    crops up to their rounding (float arithmetic here).

    Each view resizes either all U frames of its clip item (then gathers its windows) or only its
    own T (k + 2) window frames (gathered first), whichever is fewer: several test clips per item
    make U larger than one view's windows.

    Args:
        frames: uint8 ``[B, U, H, W]`` decoded frames of each clip (zero-padded along U).
        positions: int64 ``[B, T, k + 2]`` (one view) or ``[B, V, T, k + 2]``: the window frames
            t-k-1..t of every sampled t as positions along U.
        boxes: int64 ``[B, 5]`` or ``[B, V, 5]`` crop boxes (:meth:`~datasets.transforms.CropBox.as_array`).
        levels: float32 ``[B, 2]`` (scale, offset) with gray = scale * frame + offset.
        size: output side S.
        norm: the plane normalisation.
        jitter: float32 ``[B, 2]`` brightness and contrast per sample, or None.

    Returns:
        float32 ``[B, T, 3, S, S]`` or ``[B, V, T, 3, S, S]``.
    """
    single = positions.dim() == 3
    if single:
        positions, boxes = positions[:, None], boxes[:, None]  # [B, 1, T, k + 2], [B, 1, 5]
    batch, views, count, window = positions.shape
    if batch == 0:  # every sample of the batch was skipped
        shape = (0, count, PLANES, size, size) if single else (0, views, count, PLANES, size, size)
        return torch.zeros(shape, device=frames.device)
    device, per_view = frames.device, count * window
    positions = positions.to(device)
    scale, offset = levels.to(device, torch.float32).unbind(-1)  # [B] each
    if frames.shape[1] > per_view:  # resize each view's window frames only
        rows = torch.arange(batch, device=device)[:, None]  # [B, 1]
        picked = frames[rows, positions.reshape(batch, views * per_view)]  # [B, V * T * (k + 2), H, W]
        picked = picked.view(batch * views, per_view, *frames.shape[2:])  # [B * V, T * (k + 2), H, W]
        gray = _levels_to_gray(picked, scale.repeat_interleave(views), offset.repeat_interleave(views))
        windows = crop_resize_torch(gray, boxes.reshape(batch * views, 1, -1), size)  # [B * V, 1, T * (k + 2), S, S]
    else:  # resize the clip's frames once per view, then gather the windows
        resized = crop_resize_torch(_levels_to_gray(frames, scale, offset), boxes, size)  # [B, V, U, S, S]
        index = positions.reshape(batch, views, per_view, 1, 1).expand(-1, -1, -1, size, size)
        windows = torch.gather(resized, 2, index)  # [B, V, T * (k + 2), S, S]
    windows = windows.view(batch, views, count, window, size, size)
    return planes_from_windows(windows[:, 0] if single else windows, norm, jitter)


def _levels_to_gray(frames: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """float32 gray ``clamp(scale * frames + offset, 0, 255)`` of uint8 frames ``[N, ...]`` with
    one ``scale`` and ``offset`` ``[N]`` per row."""
    shape = (-1,) + (1,) * (frames.dim() - 1)
    return torch.addcmul(offset.view(shape), frames.float(), scale.view(shape)).clamp_(0.0, PIXEL_MAX)


@dataclass(frozen=True)
class DevicePlanes:
    """The device step of ``DATA.PLANES_ON_DEVICE``: a batch from the workers -> normalised planes.

    Args:
        norm: the plane normalisation.
        crop_size: 0 = the batch holds the workers' cropped windows (:func:`planes_from_windows`);
            else the side S the device crops and resizes whole frames to (``DATA.CROP_ON_DEVICE``,
            :func:`planes_from_frames`).
    """

    norm: PlaneNorm = PlaneNorm()
    crop_size: int = 0

    def __call__(self, batch: Mapping[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        """float32 planes ``[B, (V,) T, 3, S, S]`` on ``device`` of a collated batch.

        Args:
            batch: a :class:`~datasets.dataset.ClipCollate` batch of ``planes_on_device`` items.
            device: where the planes are computed.
        """
        clips = batch["clips"].to(device, non_blocking=True)
        jitter = batch["jitter"].to(device) if "jitter" in batch else None
        if not self.crop_size:
            return planes_from_windows(clips, self.norm, jitter)
        return planes_from_frames(clips, batch["windows"], batch["boxes"], batch["levels"],
                                  self.crop_size, self.norm, jitter)


def ifns_planes(gray: np.ndarray, frame_ids: np.ndarray, indices: np.ndarray, stride: int,
                num_frames: int) -> np.ndarray:
    """Computes the planes fd(t-1), fd(t), avg(t) for each sampled t.

    Args:
        gray: float32 ``[U, H, W]`` gray frames (0..255 scale) of the sorted frame ids ``frame_ids``,
            which must include :func:`needed_frames` of ``indices``.
        frame_ids: ``[U]`` sorted frame indices of ``gray``.
        indices: ``[T]`` sampled frame indices t.
        stride: the frame-difference stride k.
        num_frames: frames in the clip (for clamping).

    Returns:
        float32 ``[T, 3, H, W]`` planes on the 0..255 scale.
    """
    indices = np.asarray(indices, dtype=np.int64)

    def at(frame: np.ndarray) -> np.ndarray:
        return np.searchsorted(frame_ids, np.clip(frame, 0, num_frames - 1))

    fd_prev = np.abs(gray[at(indices - 1)] - gray[at(indices - 1 - stride)])  # [T, H, W]
    fd_now = np.abs(gray[at(indices)] - gray[at(indices - stride)])  # [T, H, W]
    window = indices[:, None] - np.arange(stride)[None, :]  # [T, k]: t, t-1, ..., t-k+1
    avg = gray[at(window)].mean(axis=1)  # [T, k, H, W] -> [T, H, W]
    return np.stack([fd_prev, fd_now, avg], axis=1).astype(np.float32)  # [T, 3, H, W]


def ifns_planes_uint8(gray: np.ndarray, frame_ids: np.ndarray, indices: np.ndarray, stride: int,
                      num_frames: int, norm: PlaneNorm = PlaneNorm()) -> np.ndarray:
    """The normalised planes straight from uint8 frames: ``norm(ifns_planes(gray.astype(float32),
    ...))`` to float rounding (about 1e-7), four to five times faster.

    The differences are taken in uint8 (``cv2.absdiff``, exact), the k-frame sum in uint16 (exact)
    and each plane is written once into the float32 output, scaled and shifted by ``norm`` in the
    same pass (the 1 / k of the average folded into the scale).

    Args:
        gray: uint8 ``[U, H, W]`` gray frames of the sorted frame ids ``frame_ids``, which must
            include :func:`needed_frames` of ``indices``.
        frame_ids: ``[U]`` sorted frame indices of ``gray``.
        indices: ``[T]`` sampled frame indices t.
        stride: the frame-difference stride k.
        num_frames: frames in the clip (for clamping).
        norm: the plane normalisation.

    Returns:
        float32 ``[T, 3, H, W]`` normalised planes.
    """
    indices = np.asarray(indices, dtype=np.int64)

    def at(frame: np.ndarray) -> np.ndarray:
        return np.searchsorted(frame_ids, np.clip(frame, 0, num_frames - 1))

    pairs = np.stack([at(indices - 1), at(indices - 1 - stride), at(indices), at(indices - stride)],
                     axis=1)  # [T, 4]: fd(t-1) from a - b, fd(t) from c - d
    window = at(indices[:, None] - np.arange(stride)[None, :])  # [T, k]
    (fd_prev_scale, fd_prev_shift), (fd_scale, fd_shift), (avg_scale, avg_shift) = norm.affine()
    avg_scale /= stride
    out = np.empty((len(indices), PLANES) + gray.shape[1:], np.float32)  # [T, 3, H, W]
    diff = np.empty(gray.shape[1:], np.uint8)  # [H, W]
    total = np.empty(gray.shape[1:], np.uint16)  # [H, W]
    for t, (a, b, c, d) in enumerate(pairs):
        cv2.absdiff(gray[a], gray[b], dst=diff)
        cv2.addWeighted(diff, fd_prev_scale, diff, 0.0, fd_prev_shift, dst=out[t, 0], dtype=cv2.CV_32F)
        cv2.absdiff(gray[c], gray[d], dst=diff)
        cv2.addWeighted(diff, fd_scale, diff, 0.0, fd_shift, dst=out[t, 1], dtype=cv2.CV_32F)
        np.copyto(total, gray[window[t, 0]])
        for j in window[t, 1:]:
            np.add(total, gray[j], out=total)  # numpy: 3x faster than cv2.add on mixed types
        cv2.addWeighted(total, avg_scale, total, 0.0, avg_shift, dst=out[t, 2], dtype=cv2.CV_32F)
    return out


def normalize_uint8_planes(planes: np.ndarray, norm: PlaneNorm = PlaneNorm()) -> np.ndarray:
    """``norm(planes.astype(float32))`` of uint8 planes ``[T, 3, H, W]`` in one pass per plane.

    Args:
        planes: uint8 ``[T, 3, H, W]`` planes on the 0..255 scale.
        norm: the plane normalisation.

    Returns:
        float32 ``[T, 3, H, W]``.
    """
    out = np.empty(planes.shape, np.float32)  # [T, 3, H, W]
    affine = norm.affine()
    for t in range(len(planes)):
        for p, (scale, shift) in enumerate(affine):
            cv2.addWeighted(planes[t, p], scale, planes[t, p], 0.0, shift, dst=out[t, p],
                            dtype=cv2.CV_32F)
    return out


def normalize_planes(planes: np.ndarray, norm: PlaneNorm = PlaneNorm()) -> np.ndarray:
    """Normalisation of planes [..., 3, H, W] on the 0..255 scale (CLIP's by default)."""
    return norm(planes)


def denormalize_planes(planes: np.ndarray, norm: PlaneNorm = PlaneNorm()) -> np.ndarray:
    """Inverse of :func:`normalize_planes` (for pictures): back to the 0..255 scale."""
    return norm.inverse(planes)
