"""Learned token selection: DynamicViT (Rao et al., NeurIPS 2021) as STPrivacy (Li et al., ICCV 2023)
applies it to tubelet tokens.

The tokens of a clip are ``T'`` time slices of ``S`` tubelets each (slice-major, ``N = T' S``).
Before the configured blocks a :class:`KeepPredictor` scores every token keep / drop; the decisions
are hierarchical (a token dropped once stays dropped):

- **training**: hard Gumbel-softmax samples with the straight-through estimator
  (:func:`gumbel_keep`: the forward value is exactly 0 or 1, the gradient is that of the soft
  sample), and the dropped tokens are hidden from every other token by an additive attention mask
  (:func:`policy_key_mask`: DynamicViT's attention masking; a dropped token still sees the kept
  ones and itself, so its row stays defined). A ratio loss (:func:`ratio_loss`) pulls the kept
  fraction to its target;
- **test**: exactly ``k`` tokens per time slice are kept (:func:`keep_counts`,
  :func:`topk_per_slice`) and the others are removed from the sequence.

Choices (docs/privacy.md, section STPrivacy):

- The predictor is STPrivacy's hierarchical one (its released ``PredictorLG``): the projected
  features are split into a local third, a time-slice third (the policy-weighted mean over the
  slice) and a video third (the policy-weighted mean over the clip), then an MLP C -> C/2 -> C/4
  -> 2 with log-softmax; class 0 is "keep" (the released code's order). DynamicViT's own predictor
  has a local and a global half.
- Top-k is per time slice (the released STPrivacy test path), so every tubelet time step keeps the
  same number of tubelets. ``k`` is rounded half up (the released code truncates with ``int``,
  for which ``int(100 * 0.29) == 28``), at least 1.
- The ratio loss is DynamicViT's squared error of the kept fraction, taken per time slice (the
  released STPrivacy code keeps its decisions as ``[B, T', S]``) and averaged over the stages.
- DynamicViT multiplies the exponentiated scores by the policy (its ``softmax_with_policy``) and
  adds a small epsilon; here the mask is additive (0 / ``-inf``, no epsilon) so that the SDPA
  kernels run it and dropped keys get exactly zero weight. The task gradient still reaches every
  predictor through the straight-through decisions: the final decision blanks the output tubelets
  (STPrivacy's final selection) and each later predictor pools with the decisions before it.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

logger = logging.getLogger(__name__)

KEEP = 0  # index of "keep" among the predictor's two log-probabilities (the released code's order)
POOL_EPS = 1e-6  # floor of the kept count in the policy-weighted means (a slice may lose every token)
RATE_EPS = 1e-4  # keep rates of the initial bias are clamped to [RATE_EPS, 1 - RATE_EPS]


class KeepPredictor(nn.Module):
    """Keep / drop log-probabilities of tubelet tokens from local, time-slice and video context.

    Args:
        width: token width C.
        slices: time slices T' of the token sequence (slice-major: ``N = T' * S``).
    """

    def __init__(self, width: int, slices: int) -> None:
        super().__init__()
        self.slices = slices
        self.in_proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU())
        self.out_mlp = nn.Sequential(
            nn.Linear(width, width // 2), nn.GELU(),
            nn.Linear(width // 2, width // 4), nn.GELU(),
            nn.Linear(width // 4, 2))

    def init_keep_rate(self, rate: float) -> None:
        """Sets the output bias so that an untrained predictor keeps a token with probability
        ``rate`` (its weights are small: the log-probabilities start near the bias)."""
        rate = min(max(rate, RATE_EPS), 1 - RATE_EPS)
        with torch.no_grad():
            self.out_mlp[-1].bias.copy_(torch.tensor([rate, 1 - rate]).log())  # order: keep, drop

    def forward(self, x: Tensor, policy: Tensor) -> Tensor:
        """Args:
            x: tokens [B, N, C], slice-major.
            policy: current decisions [B, N] (1 kept, 0 dropped; straight-through in training).

        Returns:
            log-probabilities [B, N, 2] (index :data:`KEEP` = keep).
        """
        b, n, c = x.shape
        h = self.in_proj(x).view(b, self.slices, n // self.slices, c)  # [B, T', S, C]
        p = policy.view(b, self.slices, -1, 1).to(h.dtype)  # [B, T', S, 1]
        third, two_thirds = c // 3, 2 * c // 3
        local = h[..., :third]
        per_slice = (h[..., third:two_thirds] * p).sum(2, keepdim=True) / p.sum(2, keepdim=True).clamp_min(POOL_EPS)
        video = (h[..., two_thirds:] * p).sum((1, 2), keepdim=True) / p.sum((1, 2), keepdim=True).clamp_min(POOL_EPS)
        h = torch.cat([local, per_slice.expand_as(h[..., third:two_thirds]),
                       video.expand_as(h[..., two_thirds:])], dim=-1)  # [B, T', S, C]
        return F.log_softmax(self.out_mlp(h.flatten(1, 2)), dim=-1)


def gumbel_keep(log_probs: Tensor, previous: Tensor, tau: float = 1.0) -> Tensor:
    """Training decisions: a hard Gumbel-softmax sample of keep / drop per token, straight-through,
    times the previous decisions (a dropped token stays dropped).

    Args:
        log_probs: [B, N, 2] from :class:`KeepPredictor`.
        previous: [B, N] decisions of the stage before (ones at the first).
        tau: Gumbel-softmax temperature.

    Returns:
        [B, N]: forward values exactly 0 or 1; the gradient is that of the soft sample.
    """
    return F.gumbel_softmax(log_probs, tau=tau, hard=True)[..., KEEP] * previous


def policy_key_mask(keep: Tensor, dtype: torch.dtype) -> Tensor:
    """The additive attention mask of hard decisions: query i sees key j when j is kept or j == i.

    Args:
        keep: [B, N] decisions (> 0.5 = kept); no gradient is taken through the mask.
        dtype: dtype of the mask.

    Returns:
        [B, N, N]: 0 where visible, ``-inf`` where hidden (every row has its diagonal).
    """
    kept = keep.detach() > 0.5  # [B, N]
    eye = torch.eye(keep.shape[1], dtype=torch.bool, device=keep.device)
    visible = kept[:, None, :] | eye  # [B, N (queries), N (keys)]
    return torch.zeros(visible.shape, dtype=dtype, device=keep.device).masked_fill_(~visible, float("-inf"))


def stage_ratios(keep_ratio: float, stages: int) -> list[float]:
    """Kept fraction after each selection stage: ``keep_ratio ** ((i + 1) / stages)``, so the last
    stage keeps ``keep_ratio`` (DynamicViT's base rate rho gives ``keep_ratio = rho ** stages``)."""
    return [keep_ratio ** ((i + 1) / stages) for i in range(stages)]


def keep_counts(keep_ratio: float, stages: int, per_slice: int) -> list[int]:
    """Tokens kept per time slice after each stage at test time.

    Args:
        keep_ratio: fraction kept after the last stage, in (0, 1].
        stages: selection stages.
        per_slice: tubelets S of one time slice.

    Returns:
        ``S * r_i`` rounded half up for the ratios of :func:`stage_ratios`, at least 1 and never
        more than the stage before; the last is ``S * keep_ratio`` rounded (at least 1).
    """
    counts, previous = [], per_slice
    for ratio in stage_ratios(keep_ratio, stages):
        previous = min(previous, max(1, int(per_slice * ratio + 0.5)))  # rounded half up
        counts.append(previous)
    return counts


def topk_per_slice(log_probs: Tensor, slices: int, k: int) -> Tensor:
    """Test decisions: the ``k`` tokens of highest keep log-probability in every time slice.

    Args:
        log_probs: [B, T' * n, 2] of the n tokens left in each slice.
        slices: T'.
        k: tokens kept per slice (<= n).

    Returns:
        indices [B, T', k] into each slice's n tokens, in descending score.
    """
    scores = log_probs[..., KEEP].unflatten(1, (slices, -1))  # [B, T', n]
    return scores.topk(k, dim=-1).indices


def ratio_loss(decisions: list[Tensor], targets: list[float]) -> Tensor:
    """DynamicViT's ratio loss per time slice, averaged over the stages.

    Args:
        decisions: per stage, decisions [B, T', S] (straight-through values).
        targets: per stage, the target kept fraction.

    Returns:
        scalar ``mean_i mean_{b, t} (mean_s d_i - r_i)^2`` (float32).
    """
    terms = [((d.float().mean(-1) - r) ** 2).mean() for d, r in zip(decisions, targets)]
    return torch.stack(terms).mean()
