"""Trainer.train_step and the trainer state: the adversarial alternation steps the privacy heads
alone on detached video features (no encoder forward, head LR on the schedule, accumulation still
equal to one big batch), the step draws exactly its window, and state_dict / load_state_dict
continue a run bit-exactly."""
import copy

import numpy as np
import pytest
import torch

import models
from datasets.mixup import Mixup
from fakes import HEAD_LR, K, P, FakeModel, make_batches, make_trainer, merge
from trainers.trainer import Trainer
from utils.config import load_config

HEAD_STEPS = 2


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_extra_head_steps_change_only_the_head_and_cost_no_encoder_forward():
    torch.manual_seed(0)
    plain, alternating = FakeModel(), FakeModel()
    alternating.load_state_dict(plain.state_dict())
    calls = _count_calls(alternating.encoder)
    t_plain = make_trainer(plain, accumulation=1, steps=2, mode="adversarial")
    t_alt = make_trainer(alternating, accumulation=1, steps=2, mode="adversarial", head_steps=HEAD_STEPS)
    t_plain.scheduler.step(), t_alt.scheduler.step()  # past the warmup's zero LR
    batch = make_batches(1, 4)[0]
    t_plain.train_step([batch])
    result = t_alt.train_step([batch])
    assert calls[0] == 1 and result.updated  # one forward of the encoder for the whole step
    head = {f"heads.{name}" for name, _ in alternating.heads.named_parameters()}
    after_plain, after_alt = plain.state_dict(), alternating.state_dict()
    for name, value in after_plain.items():
        assert torch.equal(value, after_alt[name]) != (name in head), name
    assert all(p.grad is None for p in alternating.parameters())


def test_head_lr_follows_the_schedule():
    torch.manual_seed(0)
    trainer = make_trainer(FakeModel(), accumulation=1, steps=4, mode="adversarial", head_steps=HEAD_STEPS)
    assert trainer.head_optimizer.param_groups[0]["lr"] == 0.0  # warmup starts at 0
    for step, batch in enumerate(make_batches(3, 2), start=1):
        trainer.train_step([batch])
        for group in trainer.head_optimizer.param_groups:
            assert group["lr"] == pytest.approx(HEAD_LR * trainer.scheduler.factor(step))
    assert trainer.scheduler.factor(3) < trainer.scheduler.factor(1)  # it decays


def test_accumulation_with_head_steps_equals_one_big_batch():
    torch.manual_seed(0)
    reference = FakeModel()
    accumulated = copy.deepcopy(reference)
    micro = make_batches(num=5, size=2)  # windows of 2: [2, 2, 1] micro-batches
    big = merge(micro, [2, 2, 1])
    kwargs = dict(steps=3, mode="adversarial", head_steps=HEAD_STEPS)
    t_acc = make_trainer(accumulated, accumulation=2, **kwargs)
    t_ref = make_trainer(reference, accumulation=1, **kwargs)
    t_acc.train_one_epoch(micro, epoch=0, num_epochs=1)
    t_ref.train_one_epoch(big, epoch=0, num_epochs=1)
    for (name, p_acc), p_ref in zip(accumulated.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p_acc, p_ref, rtol=1e-6, atol=1e-7, msg=name)


def test_train_step_draws_exactly_its_window_from_an_iterator():
    torch.manual_seed(0)
    trainer = make_trainer(FakeModel(), accumulation=2, steps=2)
    batches = iter(make_batches(3, 2))
    result = trainer.train_step(batches, window=2)
    assert result.clips == 4 and result.finite_clips == 4 and set(result.losses) == {"loss", "action", "identity"}
    assert len(list(batches)) == 1
    with pytest.raises(ValueError, match="window"):
        trainer.train_step(iter(make_batches(1, 2)), window=2)
    with pytest.raises(ValueError, match="window="):
        trainer.train_step(iter(make_batches(1, 2)))


def _stateful_trainer(model: FakeModel) -> Trainer:
    trainer = make_trainer(model, accumulation=1, steps=6, mode="adversarial", head_steps=HEAD_STEPS,
                           precision="fp16", scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 8))
    trainer.mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, label_smoothing=0.1,
                          num_classes=K, privacy_classes={"identity": P}, generator=np.random.default_rng(5))
    return trainer


def test_state_dict_round_trip_continues_bit_exactly(tmp_path):
    torch.manual_seed(0)
    batches = make_batches(4, 2)
    straight = _stateful_trainer(FakeModel())
    for batch in batches[:2]:
        straight.train_step([batch])
    torch.save(straight.state_dict(), tmp_path / "state.pth")
    resumed = _stateful_trainer(FakeModel())  # other initial weights, fresh optimizers and rng
    resumed.load_state_dict(torch.load(tmp_path / "state.pth", weights_only=True))
    assert set(straight.state_dict()) == {"model", "optimizer", "head_optimizer", "scheduler", "scaler", "epoch",
                                          "global_step", "best_acc1", "nonfinite", "mixup_rng"}
    for batch in batches[2:]:
        straight.train_step([batch])
        resumed.train_step([batch])
    assert resumed.counters == straight.counters and resumed.counters.global_step == 4
    for (name, value), again in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(value, again), name
    assert resumed.scaler.get_scale() == straight.scaler.get_scale()
    assert resumed.head_optimizer.param_groups[0]["lr"] == straight.head_optimizer.param_groups[0]["lr"]


def test_mspnet_returns_the_video_feature_its_privacy_heads_consumed():
    cfg = load_config(None, ["MODEL.ARCH", "custom", "MODEL.PRETRAINED", "none", "MODEL.FREEZE", "[]",
                             "DATA.NUM_FRAMES", "2", "DATA.INPUT_SIZE", "16", "MODEL.PRIVACY_CLASSES", "[4]",
                             "MODEL.CUSTOM.LAYERS", "1", "MODEL.CUSTOM.TEXT_LAYERS", "1",
                             "MODEL.CUSTOM.PATCH_SIZE", "8"])
    torch.manual_seed(0)
    model = models.build_model(cfg, ["drink water", "eat meal", "clapping"]).eval()
    clips = torch.randint(0, 256, (3, 2, 6, 1, 16, 16), dtype=torch.uint8)  # IFNS windows, k = 4
    calls = _count_calls(model.visual)
    with torch.no_grad():
        action, privacy = model(clips)
        identity = privacy["identity"]
        again_action, again_privacy, video = model(clips, return_video=True)
        again_identity = again_privacy["identity"]
    assert calls[0] == 2 and video.shape == (3, model.heads["identity"].in_features)
    torch.testing.assert_close(video.norm(dim=-1), torch.ones(3))
    assert torch.equal(action, again_action) and torch.equal(identity, again_identity)
    torch.testing.assert_close(model.heads(video)["identity"], identity)
