"""Mixup / CutMix: targets sum to 1, one lambda for both label sets, cutmix area equals lambda."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.mixup import Mixup, build_mixup
from utils.config import load_config

B, T, H, W, K, P = 6, 3, 16, 20, 5, 7


def _batch():
    clips = torch.arange(B, dtype=torch.float32).view(B, 1, 1, 1, 1).expand(B, T, 3, H, W).clone()
    label = torch.tensor([0, 1, 2, 3, 4, 0])
    identity = torch.tensor([6, 5, 4, 3, 2, 1])
    return clips, label, identity


def _lambda_of(target: torch.Tensor, own: torch.Tensor, smoothing: float, classes: int) -> torch.Tensor:
    """Recovers lambda from the weight on each row's own label (valid when the partner differs)."""
    off = smoothing / classes
    return (target[torch.arange(len(own)), own] - off) / (1.0 - smoothing)


@pytest.mark.parametrize("mixup,cutmix", [(0.8, 0.0), (0.0, 1.0)])
def test_targets_and_lambda_consistent(mixup, cutmix):
    smoothing = 0.1
    mix = Mixup(mixup, cutmix, 0.5, smoothing, K, {"identity": P, "gender": 2}, generator=np.random.default_rng(3))
    for _ in range(5):
        clips, label, identity = _batch()
        draw = mix.draw(clips.shape[0], clips.shape[-2], clips.shape[-1])  # what the trainer draws
        mixed, (action, privacy) = draw(clips), draw.targets(label, {"identity": identity, "gender": identity % 2})
        ident = privacy["identity"]
        # every head is mixed with the same lambda and partner: gender (id % 2) follows identity
        odd = torch.arange(P) % 2 == 1
        torch.testing.assert_close(privacy["gender"][:, 1] - smoothing / 2,
                                   ident[:, odd].sum(1) - int(odd.sum()) * smoothing / P)
        assert mixed.shape == clips.shape and action.shape == (B, K) and ident.shape == (B, P)
        torch.testing.assert_close(action.sum(1), torch.ones(B))
        torch.testing.assert_close(ident.sum(1), torch.ones(B))
        partner = mixed[:, 0, 0].reshape(B, -1)  # [B, H*W] values = partner's sample id
        own = torch.arange(B, dtype=torch.float32)[:, None]
        if cutmix:
            kept_fraction = (partner == own).float().mean(1)  # area kept from the own clip
            # Rows mixed with themselves keep everything; the others keep exactly lambda.
            lam_from_area = kept_fraction[kept_fraction < 1]
            if len(lam_from_area):
                lam = lam_from_area[0]
                assert torch.allclose(lam_from_area, lam)
                # the same box on every frame
                assert torch.equal(mixed[:, 0], mixed[:, -1])
        else:
            lam = None
        ident_lam = _lambda_of(ident, identity, smoothing, P)  # identities all differ
        moved = ident_lam < 1 - 1e-6
        if moved.any():
            lam_value = ident_lam[moved][0]
            assert torch.allclose(ident_lam[moved], lam_value, atol=1e-5)
            action_lam = _lambda_of(action, label, smoothing, K)
            differs = moved & (action_lam < 1 - 1e-6)
            torch.testing.assert_close(action_lam[differs], lam_value.expand(int(differs.sum())))
            if lam is not None:
                torch.testing.assert_close(lam_value, lam)


def test_build_mixup_off_when_both_alphas_zero():
    assert build_mixup(load_config(None, ["AUG.MIXUP", "0.0", "AUG.CUTMIX", "0.0"])) is None
    mix = build_mixup(load_config(None, ["AUG.MIXUP", "0.8", "AUG.CUTMIX", "1.0"]))
    assert isinstance(mix, Mixup) and mix.num_classes == 10 and mix.privacy_classes == {"identity": 10}
