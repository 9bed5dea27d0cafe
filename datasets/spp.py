"""Selective Privacy Preservation (Ilic et al., CVPR 2024) as a source wrapper: privacy templates
matched against dense DINO features select what to hide, and motion-consistent noise replaces it.

For every frame the wrapper reads:

1. the DINO descriptors of the frame (:class:`models.dino.DinoFeatures`), their saliency against
   the templates (the paper's mean over templates of the positive cosine similarity), upsampled to
   the frame;
2. the mask: ``saliency >= threshold`` (``blend="hard"``), or the saliency itself
   (``blend="soft"``: the release's ``lerp(frame, noise, saliency)``);
3. the noise (:mod:`datasets.motion_noise`): one uniform noise image per sample, animated with the
   Farneback flow of the source video (``first_frame``, ``continuous``) or fresh every frame
   (``iid``), and ``out = frame * (1 - mask) + 255 * noise * mask``.

Where it runs: in the data-loader workers, on the CPU, one thread per worker (``worker_init`` sets
``torch.set_num_threads(1)``; workers are the parallelism), like the film simulation; each worker
holds its copy of the ViT (forked, shared until written). ``SPP.DEVICE cuda`` runs the ViT on the
GPU, which a forked worker cannot use: it needs ``DATA.NUM_WORKERS 0`` (the tools' case). The
frames need their neighbours for the flow, which only the source has, so SPP is a source wrapper,
not an input encoder. Determinism: the sample's generator draws one noise seed in
:meth:`~datasets.dataset.ClipDataset.wrap`; everything else is a function of the frames.

Cost per 224 px frame on one core of the shared 2-core CPU (docs/privacy.md): ViT-S/8 at stride 4
(the release) 3 to 7 s, ViT-S/8 at stride 8 0.5 to 0.8 s, ViT-S/16 0.1 to 0.2 s; Farneback 0.03 s
at 224 px but 2.6 s at 1080p (store frames near the input size).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from yacs.config import CfgNode

from datasets.motion_noise import (NOISE_MODES, continuous_noise, first_frame_noise, noise_images,
                                   to_uint8)
from datasets.readers import Clip, to_gray
from datasets.wrappers import _RGBTransformClip
from models.dino import COMBINES, DinoFeatures, load_dino_weights, load_templates, similarity, upsample
from utils.errors import UserError
from utils.misc import PIXEL_MAX
from utils.paths import resolve_path

logger = logging.getLogger(__name__)

BLENDS = ("hard", "soft")  # SPP.BLEND: threshold the saliency, or blend by it (the release)
DEVICES = ("cpu", "cuda")  # SPP.DEVICE
FEATURE_BATCH = 8  # frames per ViT forward


@dataclass
class Obfuscated:
    """What the obfuscation did to N frames (for the item and for the picture).

    Args:
        frames: uint8 ``[N, H, W, 3]`` obfuscated frames.
        saliency: float32 ``[N, H, W]`` in [0, 1], the similarity map.
        mask: float32 ``[N, H, W]`` noise weight (0/1 for hard masks).
        noise: uint8 ``[N, H, W, 3]`` the noise frames.
    """

    frames: np.ndarray
    saliency: np.ndarray
    mask: np.ndarray
    noise: np.ndarray


class SelectiveObfuscation:
    """The SPP transform of a clip's frames (see the module docstring).

    Args:
        features: the DINO descriptor extractor (with its weights loaded).
        templates: float32 ``[K, D]`` privacy templates.
        threshold: hard masks: saliency at and above it is hidden.
        blend: one of :data:`BLENDS`.
        combine: over templates, one of :data:`models.dino.COMBINES`.
        noise: one of :data:`datasets.motion_noise.NOISE_MODES`.
        color: independent noise per RGB channel (else gray noise).
        device: where the ViT runs (cpu, or cuda in the main process only).
    """

    def __init__(self, features: DinoFeatures, templates: torch.Tensor, *, threshold: float, blend: str = "hard",
                 combine: str = "mean", noise: str = "first_frame", color: bool = True, device: str = "cpu") -> None:
        for name, value, choices in (("blend", blend, BLENDS), ("combine", combine, COMBINES),
                                     ("noise", noise, NOISE_MODES), ("device", device, DEVICES)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        if templates.dim() != 2 or templates.shape[1] != features.dim:
            raise ValueError(f"templates must be [K, {features.dim}], got {tuple(templates.shape)}")
        self.features = features
        self.templates = templates.float()
        self.threshold, self.blend, self.combine = threshold, blend, combine
        self.noise, self.color, self.device = noise, color, torch.device(device)

    def saliency(self, rgb: np.ndarray) -> np.ndarray:
        """Similarity maps of uint8 ``[N, H, W, 3]`` frames: float32 ``[N, H, W]`` in [0, 1]."""
        if self.features.mean.device != self.device:  # moved on first use: forked workers stay on the CPU
            self.features.to(self.device)
        frames = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2)
        maps = []
        for start in range(0, len(frames), FEATURE_BATCH):
            descriptors = self.features(frames[start:start + FEATURE_BATCH])  # [n, h, w, D]
            maps.append(upsample(similarity(descriptors, self.templates, self.combine), rgb.shape[1:3]).cpu())
        return torch.cat(maps).clamp(0, 1).numpy()

    def mask(self, saliency: np.ndarray) -> np.ndarray:
        """The noise weight of every pixel: 0/1 (hard) or the saliency (soft)."""
        if self.blend == "soft":
            return saliency.astype(np.float32)
        return (saliency >= self.threshold).astype(np.float32)

    def make_noise(self, frames: np.ndarray, earlier: list[np.ndarray | None], seed: int,
                   span: np.ndarray | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """The noise frames of one clip: uint8 ``[N, H, W, 3]``.

        Args:
            frames: uint8 ``[N, H, W, 3]`` the frames to obfuscate.
            earlier: per frame its predecessor in the video, or None (``first_frame``).
            seed: the sample's noise seed (the only randomness).
            span: ``continuous``: the consecutive frames from the first to the last of ``frames``.
            rows: ``continuous``: the positions of ``frames`` in ``span``.
        """
        n, height, width = frames.shape[:3]
        generator = torch.Generator().manual_seed(seed)
        if self.noise == "iid":
            return to_uint8(noise_images(n, height, width, self.color, generator))
        init = noise_images(1, height, width, self.color, generator)[0]
        if self.noise == "continuous":
            return to_uint8(continuous_noise(span, init)[rows])
        return to_uint8(first_frame_noise(frames, earlier, init))

    def __call__(self, frames: np.ndarray, noise: np.ndarray) -> Obfuscated:
        """Hides the template-like parts of uint8 ``[N, H, W, 3]`` frames under ``noise`` (uint8,
        same shape; :meth:`make_noise`)."""
        saliency = self.saliency(frames)
        mask = self.mask(saliency)
        return Obfuscated(blend_frames(frames, noise, mask), saliency, mask, noise)


def blend_frames(frames: np.ndarray, noise: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``frames * (1 - mask) + noise * mask`` as uint8; pixels of mask 0 are the frames' own.

    Args:
        frames: uint8 ``[N, H, W, 3]``.
        noise: uint8 ``[N, H, W, 3]``.
        mask: float32 ``[N, H, W]`` in [0, 1].
    """
    m = mask[..., None]
    mixed = np.rint(frames * (1 - m) + noise.astype(np.float32) * m)
    return np.where(m > 0, np.clip(mixed, 0, PIXEL_MAX), frames).astype(np.uint8)


class SPPClip(_RGBTransformClip):
    """A clip whose frames pass through :class:`SelectiveObfuscation` (gray is taken after it).

    Reads, beside the asked frames, what the noise needs: each frame's predecessor
    (``first_frame``) or every frame from the first asked to the last (``continuous``).

    Args:
        clip: the source clip (RGB frames).
        spp: the transform.
        seed: the sample's noise seed (drawn from the sample's generator).
    """

    def __init__(self, clip: Clip, spp: SelectiveObfuscation, seed: int) -> None:
        super().__init__(clip)
        self.spp = spp
        self.seed = seed

    def obfuscate(self, indices: np.ndarray) -> Obfuscated:
        """The obfuscation of frames ``indices`` (any order, repeats allowed)."""
        wanted, inverse = np.unique(np.asarray(indices, np.int64), return_inverse=True)
        if self.spp.noise == "continuous":
            span = self.clip.read(np.arange(wanted[0], wanted[-1] + 1), gray=False)
            rows = wanted - wanted[0]
            frames = span[rows]
            noise = self.spp.make_noise(frames, [], self.seed, span=span, rows=rows)
        else:
            needed, rows = np.unique(np.concatenate([wanted, np.maximum(wanted - 1, 0)]), return_inverse=True)
            read = self.clip.read(needed, gray=False)
            frames = read[rows[:len(wanted)]]
            earlier = [read[r] if i > 0 else None for i, r in zip(wanted, rows[len(wanted):])]
            noise = self.spp.make_noise(frames, earlier, self.seed)
        result = self.spp(frames, noise)
        return Obfuscated(result.frames[inverse], result.saliency[inverse], result.mask[inverse],
                          result.noise[inverse])

    def read(self, indices: np.ndarray, gray: bool) -> np.ndarray:
        """Obfuscated frames ``indices``: uint8 ``[N, H, W]`` (gray) or ``[N, H, W, 3]``."""
        frames = self.obfuscate(indices).frames
        return to_gray(frames) if gray else frames


def build_features(cfg: CfgNode, weights: str | None = None) -> DinoFeatures:
    """The DINO extractor of ``SPP.*`` with its weights from a local file.

    Args:
        cfg: the experiment config (reads SPP.ARCH, STRIDE, LAYER, FACET, INPUT_SIZE, WEIGHTS).
        weights: the weights file (None = ``SPP.WEIGHTS``).

    Raises:
        UserError: no weights file (the message says how to pass one), or one that does not fit.
    """
    spp = cfg.SPP
    path = spp.WEIGHTS if weights is None else weights
    if not path:
        raise UserError(f"SPP needs DINO ViT weights ({spp.ARCH}) from a local file, nothing is downloaded: "
                        "pass --opts SPP.WEIGHTS /path/to/dino_deitsmall8_pretrain.pth (or --weights FILE)")
    features = DinoFeatures(spp.ARCH, stride=spp.STRIDE, layer=spp.LAYER, facet=spp.FACET, input_size=spp.INPUT_SIZE)
    load_dino_weights(features, resolve_path(path))
    return features


def build_spp(cfg: CfgNode) -> SelectiveObfuscation | None:
    """The SPP transform of ``cfg`` (None unless ``SPP.ENABLED``).

    Raises:
        UserError: missing weights or templates, or templates that do not fit the descriptors.
    """
    spp = cfg.SPP
    if not spp.ENABLED:
        return None
    if not spp.TEMPLATES:
        raise UserError("SPP.ENABLED needs privacy templates: make a file with tools/make_spp_template.py "
                        "and pass --opts SPP.TEMPLATES FILE.pt")
    features = build_features(cfg)
    templates = load_templates(resolve_path(spp.TEMPLATES), features.dim)
    logger.info("SPP: %d templates, %s %s layer %d stride %d, %s masks (threshold %.2f), %s noise",
                len(templates), spp.ARCH, spp.FACET, spp.LAYER, spp.STRIDE, spp.BLEND, spp.THRESHOLD, spp.NOISE)
    return SelectiveObfuscation(features, templates, threshold=spp.THRESHOLD, blend=spp.BLEND, combine=spp.COMBINE,
                                noise=spp.NOISE, color=spp.NOISE_COLOR, device=spp.DEVICE)
