"""Losses, AdamW parameter groups, the per-step cosine schedule and the precision helpers."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainers.losses import PrivacyLoss, soft_target_cross_entropy
from trainers.optim import CosineWarmupScheduler, build_optimizer, build_param_groups, trainable_parameter_table
from trainers.precision import autocast_context, build_grad_scaler


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.embed = nn.Parameter(torch.zeros(3, 4))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(4, 2)

    def new_modules(self) -> list[nn.Module]:
        return [self.head]

    def no_weight_decay(self) -> set[str]:
        return {"embed"}


def test_param_groups_follow_new_modules_ndim_and_no_weight_decay():
    net = _Net()
    groups = {g["name"]: g for g in build_param_groups(net, lr=1.0, new_module_lr_mult=10.0, weight_decay=0.5)}
    ids = {name: {id(p) for p in g["params"]} for name, g in groups.items()}
    assert ids["base_decay"] == {id(net.backbone.weight)}
    assert ids["base_no_decay"] == {id(net.backbone.bias), id(net.embed)}
    assert ids["new_decay"] == {id(net.head.weight)}
    assert ids["new_no_decay"] == {id(net.head.bias)}
    assert groups["new_decay"]["lr"] == 10.0 and groups["base_decay"]["lr"] == 1.0
    assert groups["base_no_decay"]["weight_decay"] == 0.0 and groups["new_decay"]["weight_decay"] == 0.5
    frozen = {id(p) for p in net.frozen.parameters()}
    assert not frozen & set().union(*ids.values())
    table = trainable_parameter_table(net)
    assert "frozen" in table and "backbone" in table
    optimizer = build_optimizer(net, lr=1.0, new_module_lr_mult=10.0, weight_decay=0.5, betas=(0.9, 0.98), eps=1e-8)
    assert optimizer.defaults["betas"] == (0.9, 0.98)


def test_cosine_schedule_with_warmup_per_step():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [param], "lr": 2.0}])
    sched = CosineWarmupScheduler(optimizer, total_steps=10, warmup_steps=4, min_lr_ratio=0.1, warmup_lr_ratio=0.0)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(10):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[:5] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    mid = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 3 / 6))
    assert lrs[7] == pytest.approx(2.0 * mid)
    assert lrs[10] == pytest.approx(0.2)
    other = CosineWarmupScheduler(torch.optim.SGD([{"params": [param], "lr": 2.0}]), total_steps=10,
                                  warmup_steps=4, min_lr_ratio=0.1)
    other.load_state_dict(sched.state_dict())
    assert other.get_last_lr() == pytest.approx([0.2])


def test_soft_target_ce_matches_hard_ce_and_label_smoothing():
    logits = torch.randn(5, 7)
    label = torch.randint(0, 7, (5,))
    assert soft_target_cross_entropy(logits, F.one_hot(label, 7).float()) == pytest.approx(
        F.cross_entropy(logits, label).item(), rel=1e-6)
    smooth = F.one_hot(label, 7).float() * 0.9 + 0.1 / 7
    assert soft_target_cross_entropy(logits, smooth) == pytest.approx(
        F.cross_entropy(logits, label, label_smoothing=0.1).item(), rel=1e-6)


@pytest.mark.parametrize("mode, scale", [("aux", 1.0), ("adversarial", -1.0), ("none", 0.0)])
def test_privacy_loss_modes(mode, scale):
    loss = PrivacyLoss(mode=mode, weights={"identity": 0.5, "gender": 0.25}, label_smoothing=0.0)
    assert loss.privacy_grad_scale == scale and loss.heads == ("identity", "gender")
    action, identity, gender = torch.randn(3, 4), torch.randn(3, 5), torch.randn(3, 2)
    label, ident, sex = torch.tensor([0, 1, 2]), torch.tensor([4, 0, 1]), torch.tensor([1, 0, 1])
    out = loss(action, {"identity": identity, "gender": gender}, label, {"identity": ident, "gender": sex})
    w_id, w_sex = (1.0, 1.0) if mode == "none" else (0.5, 0.25)
    expected = (F.cross_entropy(action, label) + w_id * F.cross_entropy(identity, ident)
                + w_sex * F.cross_entropy(gender, sex))
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out["gender"].item() == pytest.approx(F.cross_entropy(gender, sex).item(), rel=1e-6)
    heads_only = loss.heads_only({"identity": identity, "gender": gender}, {"identity": ident, "gender": sex})
    assert heads_only.item() == pytest.approx((F.cross_entropy(identity, ident) + F.cross_entropy(gender, sex)).item())
    with pytest.raises(ValueError):
        PrivacyLoss(mode="bogus")


def test_precision_helpers():
    cpu = torch.device("cpu")
    assert build_grad_scaler("fp32", cpu) is None and build_grad_scaler("bf16", cpu) is None
    assert isinstance(build_grad_scaler("fp16", cpu), torch.amp.GradScaler)
    with autocast_context("bf16", cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast_context("fp32", cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
