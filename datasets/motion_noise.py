"""Motion-consistent noise: a noise image animated with a video's optical flow (the appearance-free
noise of Ilic et al., "Is Appearance-Free Action Recognition Possible?", ECCV 2022, ``afd/``; the
obfuscation noise of Selective Privacy Preservation, CVPR 2024).

The flow is OpenCV's dense Farneback flow (the release uses RAFT, whose weights are not here).
Every flow is *backward*: ``flow_i`` lives on frame i's pixel grid and points to where that pixel
was in the earlier frame (``frame_i(y) ~ frame_j(y + flow_i(y))``), so warping a noise image with
``remap(noise, y + flow_i(y))`` moves the noise the way the content moved. Pixels whose source
falls outside the image (and nowhere else) take the initial noise, as in ``afd``.

Modes (:data:`NOISE_MODES`):

- ``first_frame`` (the release's ``firstframe_warp``): frame i shows the one initial noise image
  warped by the flow from frame i to frame i-1. Static parts keep the same noise in every frame;
  moving parts show it displaced by their last motion. Needs frame i-1 only: cheap for sampled
  frames.
- ``continuous`` (``afd``'s ``continuous_warp``): the noise is carried from frame to frame, so the
  noise inside a moving object travels with it; needs every frame between the first and the last.
- ``iid``: fresh noise every frame (the paper's ablation without motion consistency).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from utils.misc import PIXEL_MAX

NOISE_MODES = ("first_frame", "continuous", "iid")
# OpenCV's Farneback parameters as its documentation's dense-flow example sets them
FARNEBACK_PYR_SCALE = 0.5  # image scale between pyramid levels
FARNEBACK_LEVELS = 3  # pyramid levels
FARNEBACK_WINSIZE = 15  # averaging window (pixels)
FARNEBACK_ITERATIONS = 3  # iterations per level
FARNEBACK_POLY_N = 5  # pixel neighbourhood of the polynomial expansion
FARNEBACK_POLY_SIGMA = 1.2  # Gaussian sigma of the polynomial expansion
RGB_CHANNELS = 3


def gray(frame: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W]`` gray of an RGB ``[H, W, 3]`` frame (gray frames pass through)."""
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def backward_flow(frame: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """Farneback flow on ``frame``'s grid into ``earlier``: float32 ``[H, W, 2]`` (dx, dy) with
    ``frame(y) ~ earlier(y + flow(y))``.

    Args:
        frame: uint8 ``[H, W, 3]`` or ``[H, W]``, the later frame.
        earlier: the frame the flow points into, same size.
    """
    return cv2.calcOpticalFlowFarneback(gray(frame), gray(earlier), None, FARNEBACK_PYR_SCALE, FARNEBACK_LEVELS,
                                        FARNEBACK_WINSIZE, FARNEBACK_ITERATIONS, FARNEBACK_POLY_N,
                                        FARNEBACK_POLY_SIGMA, 0)


def warp(image: np.ndarray, flow: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """``image(y + flow(y))`` by nearest-neighbour sampling (the release's mode: the noise keeps
    its grain); pixels sampled from outside the image take ``fill``.

    Args:
        image: float32 ``[H, W, C]``.
        flow: float32 ``[H, W, 2]``.
        fill: float32 ``[H, W, C]``, the values of out-of-image samples.
    """
    height, width = flow.shape[:2]
    map_x = flow[..., 0] + np.arange(width, dtype=np.float32)[None, :]
    map_y = flow[..., 1] + np.arange(height, dtype=np.float32)[:, None]
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    warped = warped.reshape(image.shape)
    inside = (np.rint(map_x) >= 0) & (np.rint(map_x) <= width - 1) & (np.rint(map_y) >= 0) & (np.rint(map_y) <= height - 1)
    return np.where(inside[..., None], warped, fill)


def noise_images(count: int, height: int, width: int, color: bool, generator: torch.Generator) -> np.ndarray:
    """``count`` uniform [0, 1) noise images: float32 ``[count, H, W, 3]`` (``color`` False: one
    channel repeated, ``afd``'s gray noise).

    Args:
        count: images.
        height: rows.
        width: columns.
        color: independent noise per channel.
        generator: the sample's generator (the only source of randomness).
    """
    channels = RGB_CHANNELS if color else 1
    noise = torch.rand((count, height, width, channels), generator=generator).numpy()
    return np.repeat(noise, RGB_CHANNELS, axis=-1) if not color else noise


def first_frame_noise(frames: np.ndarray, earlier: list[np.ndarray | None], init: np.ndarray) -> np.ndarray:
    """The release's noise: frame i shows ``init`` warped by the flow from frame i to its
    predecessor (``init`` itself where there is none: the first frame of the video).

    Args:
        frames: uint8 ``[N, H, W, 3]``.
        earlier: per frame, the previous video frame (uint8 ``[H, W, 3]``) or None.
        init: float32 ``[H, W, 3]`` initial noise.

    Returns:
        float32 ``[N, H, W, 3]`` in [0, 1).
    """
    out = np.empty(frames.shape, np.float32)
    for i, (frame, before) in enumerate(zip(frames, earlier)):
        out[i] = init if before is None else warp(init, backward_flow(frame, before), init)
    return out


def continuous_noise(frames: np.ndarray, init: np.ndarray) -> np.ndarray:
    """Noise carried along consecutive frames: frame 0 shows ``init``, frame t + 1 the noise of
    frame t warped by the flow from t + 1 to t (what comes in from outside takes ``init``).

    Args:
        frames: uint8 ``[N, H, W, 3]``, consecutive video frames.
        init: float32 ``[H, W, 3]`` initial noise.

    Returns:
        float32 ``[N, H, W, 3]`` in [0, 1).
    """
    out = np.empty(frames.shape, np.float32)
    out[0] = init
    for t in range(1, len(frames)):
        out[t] = warp(out[t - 1], backward_flow(frames[t], frames[t - 1]), init)
    return out


def to_uint8(noise: np.ndarray) -> np.ndarray:
    """Noise in [0, 1) as uint8 pixel values."""
    return np.clip(np.rint(noise * PIXEL_MAX), 0, PIXEL_MAX).astype(np.uint8)
