"""A tiny model with MSPNet's calling convention, synthetic batches and a trainer factory, shared
by the trainer tests and the DDP worker script (tests/ddp_head_worker.py)."""
from __future__ import annotations

import torch
from torch import nn

from models.heads import PrivacyHeads
from trainers.losses import PrivacyLoss
from trainers.optim import CosineWarmupScheduler, build_optimizer
from trainers.trainer import Trainer

K, P, T, SIDE = 4, 3, 2, 4
FEATURES = 8
LR, HEAD_LR = 1e-2, 1e-1  # peaks of the trainer's optimizer and of the privacy heads'


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class FakeModel(nn.Module):
    """clips [B, T, 3, S, S] -> (action [B, K], {"identity": [B, P]}[, feature [B, 8]]) like MSPNet."""

    def __init__(self, nan: bool = False) -> None:
        super().__init__()
        self.encoder = nn.Linear(T * 3 * SIDE * SIDE, FEATURES)
        self.action = nn.Linear(FEATURES, K)
        self.heads = PrivacyHeads(FEATURES, {"identity": P})
        self.nan = nan

    def new_modules(self) -> list[nn.Module]:
        return [self.action, self.heads]

    def no_weight_decay(self) -> set[str]:
        return set()

    def forward(self, clips: torch.Tensor, privacy_grad_scale: float = 1.0, mix=None, return_video: bool = False):
        clips = mix(clips) if mix is not None else clips
        feature = torch.tanh(self.encoder(clips.flatten(1)))  # [B, 8]
        action = self.action(feature)
        if self.nan:
            action = action * float("nan")
        scaled = _ScaleGrad.apply(feature, privacy_grad_scale)
        privacy = self.heads(scaled)
        return (action, privacy, feature) if return_video else (action, privacy)


def make_batches(num: int, size: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """``num`` batches of ``size`` random clips with labels and identities."""
    gen = torch.Generator().manual_seed(seed)
    clips = torch.randn(num * size, T, 3, SIDE, SIDE, generator=gen)
    label = torch.randint(0, K, (num * size,), generator=gen)
    identity = torch.randint(0, P, (num * size,), generator=gen)
    return [{"frames": clips[i:i + size], "label": label[i:i + size], "identity": identity[i:i + size]}
            for i in range(0, num * size, size)]


def merge(batches: list[dict[str, torch.Tensor]], groups: list[int]) -> list[dict[str, torch.Tensor]]:
    """Concatenates consecutive batches: ``groups`` gives how many go into each merged batch."""
    out, start = [], 0
    for size in groups:
        part = batches[start:start + size]
        out.append({k: torch.cat([b[k] for b in part]) for k in part[0]})
        start += size
    return out


def make_trainer(model: nn.Module, accumulation: int, steps: int, head_steps: int = 0, **kwargs) -> Trainer:
    """A CPU trainer of ``model`` (AdamW, cosine schedule over ``steps`` with 1 warmup step);
    ``head_steps`` > 0 adds the privacy heads' own optimizer on the same schedule."""
    optimizer = build_optimizer(model, lr=LR, new_module_lr_mult=10.0, weight_decay=0.05,
                                betas=(0.9, 0.98), eps=1e-8)
    head_optimizer = None
    if head_steps:
        head_optimizer = build_optimizer(model.heads, lr=HEAD_LR, new_module_lr_mult=1.0, weight_decay=0.05,
                                         betas=(0.9, 0.98), eps=1e-8)
    optimizers = [optimizer] + ([head_optimizer] if head_optimizer is not None else [])
    scheduler = CosineWarmupScheduler(optimizers, total_steps=steps, warmup_steps=1)
    return Trainer(model=model, optimizer=optimizer, scheduler=scheduler,
                   loss_fn=PrivacyLoss(mode=kwargs.pop("mode", "aux"), weights={"identity": 0.5}, label_smoothing=0.1),
                   device=torch.device("cpu"), accumulation_steps=accumulation, head_optimizer=head_optimizer,
                   head_steps=head_steps, **kwargs)
