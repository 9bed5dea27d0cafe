"""STPrivacy (Li et al., ICCV 2023) as an input encoder: the video becomes tubelet tokens, a learned
selection drops the action-irrelevant tubelets (sparsification), transformer blocks alter the kept
ones (anonymisation), and a linear layer turns them back into pixels.

Pipeline (``MODEL.ENCODER stprivacy``, ``MODEL.STPRIVACY.*``), from the paper and the released
core code (ming1993li/stprivacy, ``stprivacy.py``):

1. **Tubelets**: CLIP-normalised RGB ``[B, T, 3, H, W]`` -> ``conv1``, a ``Conv3d`` with kernel =
   stride = 2 x P x P (the paper's 2 x 16 x 16 at P = 16) -> ``N = T/2 * (H/P)^2`` tokens,
   slice-major (time, row, column, as the released code); plus a learned positional embedding.
   CLIP's ViT layout and names (``conv1`` without bias, ``positional_embedding``, ``ln_pre``,
   ``transformer.resblocks.{i}`` of :class:`models.clip.ResidualAttentionBlock`, ``ln_post``)
   and no class token (the released code has none).
2. **Sparsification**: before each block of ``prune_layers`` a :class:`~models.token_select.KeepPredictor`
   decides which tokens stay (:mod:`models.token_select`: Gumbel-softmax with attention masking
   while training, exact top-k per time slice at test). ``keep_ratio`` is the fraction kept
   after the last selection and can be changed on a trained encoder (``encoder.keep_ratio = r``,
   or ``--only_test --opts MODEL.STPRIVACY.KEEP_RATIO r``): it is not saved with the weights.
3. **Anonymisation**: the blocks from the last selection on alter the kept tokens; they are
   trained against the privacy heads (``TRAIN.PRIVACY_LOSS adversarial``: the reversed gradient
   of the heads on MSPNet's video feature), the action loss through MSPNet, as BDQ's minimax.
4. **Unpatchify**: ``ln_post`` then ``unpatchify``, a ``Linear(width, 3 * 2 * P * P)`` (the
   released ``head_recon``), back to pixel tubelets; **dropped tubelets are zero** (in
   CLIP-normalised units; the released code blanks them the same way). The output
   ``[B, T, 3, H, W]`` is what MSPNet (or any model, or an attacker) receives.

While training, the output is multiplied by the final straight-through decision (the released
code's ``final_select``), so every predictor gets the task gradient, and :meth:`aux_losses`
holds the weighted DynamicViT ratio loss that the trainer adds to the training loss.

Initialisation: CLIP's for the stem and blocks (no pretrained weights are loaded: the paper
starts from an image/video ViT, none is available offline), truncated normal for the predictors
and ``unpatchify``; each predictor's output bias starts at its stage's keep rate (not in the
released code, whose untrained predictors keep half the tokens at every stage: from scratch, a
clip would start training on an eighth of its tubelets against the 70% it keeps at test).
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import token_select
from models.clip import HEAD_WIDTH, Transformer, init_clip_transformer
from models.encoders import RGB, FrameRequest, check_frames, clip_normalize
from models.vision import init_new_module

logger = logging.getLogger(__name__)

TUBELET_FRAMES = 2  # frames of one tubelet (the paper's 2 x 16 x 16)
GUMBEL_TAU = 1.0  # Gumbel-softmax temperature (the released code's default)
RATIO_LOSS = "ratio"  # name of the ratio loss among the training losses


def stprivacy_problem(*, num_frames: int, image_size: int, patch: int, width: int, layers: int,
                      prune_layers: Sequence[int], keep_ratio: float, ratio_weight: float) -> str | None:
    """The first reason these STPrivacy sizes cannot work (one line, named by config key), or None.

    Args: see :class:`STPrivacyEncoder` (``num_frames`` = DATA.NUM_FRAMES, ``image_size`` =
        DATA.INPUT_SIZE).
    """
    key = "MODEL.STPRIVACY"
    if num_frames % TUBELET_FRAMES:
        return (f"MODEL.ENCODER stprivacy cuts the clip into tubelets of {TUBELET_FRAMES} frames: "
                f"DATA.NUM_FRAMES must be even, got {num_frames}")
    if patch < 1 or image_size % patch:
        return f"DATA.INPUT_SIZE {image_size} must be a multiple of {key}.PATCH {patch} (>= 1)"
    if width < HEAD_WIDTH or width % HEAD_WIDTH:
        return f"{key}.WIDTH must be a positive multiple of {HEAD_WIDTH} (attention heads), got {width}"
    if not prune_layers or list(prune_layers) != sorted(set(prune_layers)) or not all(
            0 <= i < layers for i in prune_layers):
        return (f"{key}.PRUNE_LAYERS {list(prune_layers)} must be increasing block indices in "
                f"0..{layers - 1} ({key}.LAYERS {layers}), at least one")
    if not 0 < keep_ratio <= 1:
        return f"{key}.KEEP_RATIO must be in (0, 1], got {keep_ratio}"
    if ratio_weight < 0:
        return f"{key}.RATIO_WEIGHT must not be negative, got {ratio_weight}"
    return None


class STPrivacyEncoder(nn.Module):
    """Tubelet sparsification and anonymisation (see the module docstring).

    Args:
        image_size: input side in pixels (a multiple of ``patch``).
        num_frames: sampled frames T (even).
        patch: tubelet side P in pixels.
        width: token width (heads of 64 channels).
        layers: transformer blocks.
        prune_layers: blocks before which a keep predictor selects tokens (increasing).
        keep_ratio: fraction of tubelets kept after the last selection, in (0, 1].
        ratio_weight: weight of the ratio loss (DynamicViT's 2.0).
        backend: attention backend.

    Raises:
        ValueError: sizes that do not fit (:func:`stprivacy_problem`).
    """

    request = FrameRequest(offsets=(0,), gray=False)

    def __init__(self, *, image_size: int, num_frames: int, patch: int = 16, width: int = 64,
                 layers: int = 4, prune_layers: Sequence[int] = (1, 2, 3), keep_ratio: float = 0.7,
                 ratio_weight: float = 2.0, backend: str = "sdpa") -> None:
        super().__init__()
        problem = stprivacy_problem(num_frames=num_frames, image_size=image_size, patch=patch, width=width,
                                    layers=layers, prune_layers=prune_layers, keep_ratio=keep_ratio,
                                    ratio_weight=ratio_weight)
        if problem:
            raise ValueError(problem)
        self.patch = patch
        self.grid = image_size // patch
        self.slices = num_frames // TUBELET_FRAMES  # T'
        self.per_slice = self.grid * self.grid  # S
        self.prune_layers = tuple(prune_layers)
        self.ratio_weight = ratio_weight
        self._keep_ratio = keep_ratio
        self._aux: dict[str, Tensor] = {}
        scale = width ** -0.5
        self.conv1 = nn.Conv3d(RGB, width, kernel_size=(TUBELET_FRAMES, patch, patch),
                               stride=(TUBELET_FRAMES, patch, patch), bias=False)
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.slices * self.per_slice, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, width // HEAD_WIDTH, backend=backend)
        self.predictors = nn.ModuleList(token_select.KeepPredictor(width, self.slices) for _ in prune_layers)
        self.ln_post = nn.LayerNorm(width)
        self.unpatchify = nn.Linear(width, RGB * TUBELET_FRAMES * patch * patch)
        init_clip_transformer(self.transformer, width, layers)
        init_new_module(self.predictors)
        init_new_module(self.unpatchify)
        ratios = [1.0] + token_select.stage_ratios(keep_ratio, len(prune_layers))
        for predictor, before, after in zip(self.predictors, ratios, ratios[1:]):
            predictor.init_keep_rate(after / before)  # each stage's share of the tokens it sees

    # ------------------------------------------------------------------ keep ratio and losses
    @property
    def keep_ratio(self) -> float:
        """Fraction of tubelets kept after the last selection; settable on a trained encoder."""
        return self._keep_ratio

    @keep_ratio.setter
    def keep_ratio(self, value: float) -> None:
        if not 0 < value <= 1:
            raise ValueError(f"keep ratio must be in (0, 1], got {value}")
        self._keep_ratio = float(value)

    def keep_counts(self) -> list[int]:
        """Tubelets kept per time slice after each selection at test time (the last: the output)."""
        return token_select.keep_counts(self._keep_ratio, len(self.prune_layers), self.per_slice)

    @property
    def aux_loss_names(self) -> tuple[str, ...]:
        """Names of :meth:`aux_losses` (the trainer logs them)."""
        return (RATIO_LOSS,)

    def aux_losses(self) -> dict[str, Tensor]:
        """The weighted ratio loss of the last training forward, ``{"ratio": w * L_ratio}``, handed
        over once (a second call returns {} until the next training forward)."""
        aux, self._aux = self._aux, {}
        return aux

    def no_weight_decay(self) -> set[str]:
        """Embedding-like parameters exempt from weight decay."""
        return {"positional_embedding"}

    # ------------------------------------------------------------------ pixels <-> tubelets
    def tubelets(self, clips: Tensor) -> Tensor:
        """clips [B, T, 3, H, W] -> pixel tubelets [B, N, 3 * 2 * P * P], slice-major; each row in
        the layout of the ``conv1`` kernel (channel, frame, row, column); inverse of :meth:`to_video`."""
        b, p, g = clips.shape[0], self.patch, self.grid
        x = clips.reshape(b, self.slices, TUBELET_FRAMES, RGB, g, p, g, p)
        return x.permute(0, 1, 4, 6, 3, 2, 5, 7).reshape(b, self.slices * self.per_slice, -1)

    def to_video(self, tubelets: Tensor) -> Tensor:
        """Pixel tubelets [B, N, 3 * 2 * P * P] -> video [B, T, 3, H, W]."""
        b, p, g = tubelets.shape[0], self.patch, self.grid
        x = tubelets.reshape(b, self.slices, g, g, RGB, TUBELET_FRAMES, p, p)
        return x.permute(0, 1, 5, 4, 2, 6, 3, 7).reshape(b, self.slices * TUBELET_FRAMES, RGB, g * p, g * p)

    def embed(self, clips: Tensor) -> Tensor:
        """clips [B, T, 3, H, W] -> tokens [B, N, width] (tubelet embedding, position, ``ln_pre``)."""
        # conv1 has kernel = stride, so it is one matmul of the flattened tubelets (as the patch
        # embedding of models/vision.py): the tokens of conv1(clips [B, 3, T, H, W]), slice-major
        x = F.linear(self.tubelets(clips), self.conv1.weight.flatten(1))  # [B, N, width]
        return self.ln_pre(x + self.positional_embedding.to(x.dtype))

    # ------------------------------------------------------------------ the two modes
    def _train_tokens(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Training: all N tokens, dropped ones masked out of attention.

        Returns:
            (tokens [B, N, width], final straight-through decision [B, N]); the ratio loss is
            left in ``self._aux``.
        """
        b, n = x.shape[:2]
        policy = torch.ones(b, n, dtype=x.dtype, device=x.device)
        mask: Tensor | None = None
        decisions = []
        stages = dict(zip(self.prune_layers, self.predictors))
        for i, block in enumerate(self.transformer.resblocks):
            if i in stages:
                policy = token_select.gumbel_keep(stages[i](x, policy), policy, GUMBEL_TAU)  # [B, N]
                decisions.append(policy.unflatten(1, (self.slices, -1)))  # [B, T', S]
                mask = token_select.policy_key_mask(policy, x.dtype)  # [B, N, N]
            x = block(x, mask)
        targets = token_select.stage_ratios(self._keep_ratio, len(self.prune_layers))
        self._aux = {RATIO_LOSS: self.ratio_weight * token_select.ratio_loss(decisions, targets)}
        return x, policy

    def _test_tokens(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Test: exactly ``keep_counts()[i]`` tokens per time slice after stage i, the rest removed.

        Returns:
            (kept tokens [B, T' * k, width], their positions among the N tubelets [B, T' * k]).
        """
        b, n, c = x.shape
        index = torch.arange(n, device=x.device).expand(b, n)  # [B, T' * n_cur]
        stages = dict(zip(self.prune_layers, zip(self.predictors, self.keep_counts())))
        for i, block in enumerate(self.transformer.resblocks):
            if i in stages:
                predictor, k = stages[i]
                ones = torch.ones(index.shape, dtype=x.dtype, device=x.device)
                top = token_select.topk_per_slice(predictor(x, ones), self.slices, k)  # [B, T', k]
                x = x.unflatten(1, (self.slices, -1)).gather(2, top[..., None].expand(-1, -1, -1, c)).flatten(1, 2)
                index = index.unflatten(1, (self.slices, -1)).gather(2, top).flatten(1)
            x = block(x)
        return x, index

    def anonymise(self, clips: Tensor) -> tuple[Tensor, Tensor]:
        """The anonymised pixel tubelets and the kept ones.

        Args:
            clips: float ``[B, T, 3, H, W]`` CLIP-normalised RGB.

        Returns:
            ``(tubelets [B, N, 3 * 2 * P * P], keep [B, N])``: dropped tubelets are zero; ``keep``
            is the straight-through decision while training, 0/1 floats at test.
        """
        x = self.embed(clips)
        if self.training:
            x, keep = self._train_tokens(x)
            return self.unpatchify(self.ln_post(x)) * keep[..., None], keep
        x, index = self._test_tokens(x)
        kept = self.unpatchify(self.ln_post(x))  # [B, K, D]
        b, n = clips.shape[0], self.slices * self.per_slice
        out = kept.new_zeros(b, n, kept.shape[-1]).scatter(1, index[..., None].expand_as(kept), kept)
        keep = kept.new_zeros(b, n).scatter(1, index, 1.0)
        return out, keep

    def encode_clips(self, clips: Tensor) -> Tensor:
        """float ``[B, T, 3, H, W]`` CLIP-normalised RGB -> the anonymised video, same shape."""
        return self.to_video(self.anonymise(clips)[0])

    def forward(self, frames: Tensor) -> Tensor:
        """Args:
            frames: uint8 ``[B, T, 1, 3, H, W]`` RGB sampled frames.

        Returns:
            float32 ``[B, T, 3, H, W]``: the anonymised video, dropped tubelets zero.
        """
        check_frames(frames, self.request)
        return self.encode_clips(clip_normalize(frames[:, :, 0]))
