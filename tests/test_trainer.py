"""The training loop with a tiny fake model: accumulation equals one big batch (also with a short
final window), non-finite handling, mixed precision, and the multi-view evaluation metrics.
The adversarial alternation and the trainer state are in tests/test_train_step.py."""
import copy
import math

import pytest
import torch
from torch import nn

from fakes import K, P, FakeModel, make_batches as _batches, make_trainer as _trainer, merge as _merge
from trainers.evaluate import _first_occurrence, predict
from trainers.metrics import class_camera_table, compute_metrics, topk_accuracy, write_class_camera
from trainers.losses import PrivacyLoss
from trainers.nonfinite import NonFiniteLossError
from utils.errors import UserError


@pytest.mark.parametrize("mode", ["aux", "adversarial", "none"])
@pytest.mark.parametrize("clip_grad", [0.0, 0.5])
def test_accumulation_equals_one_big_batch_with_short_final_window(mode, clip_grad):
    torch.manual_seed(0)
    reference = FakeModel()
    accumulated = copy.deepcopy(reference)
    micro = _batches(num=5, size=2)  # windows of 2: [2, 2, 1] micro-batches
    big = _merge(micro, [2, 2, 1])
    t_acc = _trainer(accumulated, accumulation=2, steps=3, mode=mode, clip_grad=clip_grad)
    t_ref = _trainer(reference, accumulation=1, steps=3, mode=mode, clip_grad=clip_grad)
    stats_acc = t_acc.train_one_epoch(micro, epoch=0, num_epochs=1)
    t_ref.train_one_epoch(big, epoch=0, num_epochs=1)
    assert t_acc.counters.global_step == t_ref.counters.global_step == 3
    for p_acc, p_ref in zip(accumulated.parameters(), reference.parameters()):
        torch.testing.assert_close(p_acc, p_ref, rtol=1e-6, atol=1e-7)
    assert t_acc.scheduler.get_last_lr() == t_ref.scheduler.get_last_lr()
    assert stats_acc["loss"] > 0


def test_adversarial_reverses_the_encoder_gradient_only():
    torch.manual_seed(0)
    batch = _batches(1, 4)[0]
    grads = {}
    for mode in ("aux", "adversarial"):
        torch.manual_seed(1)
        model = FakeModel()
        loss_fn = PrivacyLoss(mode=mode)
        _, privacy = model(batch["frames"], privacy_grad_scale=loss_fn.privacy_grad_scale)
        loss_fn.heads_only(privacy, {"identity": batch["identity"]}).backward()
        grads[mode] = (model.encoder.weight.grad.clone(), model.heads["identity"].weight.grad.clone())
    torch.testing.assert_close(grads["adversarial"][0], -grads["aux"][0])
    torch.testing.assert_close(grads["adversarial"][1], grads["aux"][1])


def test_nonfinite_loss_skips_the_update_then_stops():
    model = FakeModel(nan=True)
    before = copy.deepcopy(model.state_dict())
    trainer = _trainer(model, accumulation=1, steps=4, max_nonfinite=2)
    with pytest.raises(NonFiniteLossError, match=r"3 counted in the run, 3 in a row \(optimizer steps 1-3\)") as info:
        trainer.train_one_epoch(_batches(4, 2), epoch=0, num_epochs=1)
    assert isinstance(info.value, UserError)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_fp16_scaler_calibration_skips_do_not_count():
    """A scale so large that the scaled fp16 gradients overflow: the scaler skips and halves it, the
    loss is finite, nothing counts, training goes on."""
    steps = 40
    trainer = _trainer(FakeModel(), accumulation=1, steps=steps, precision="fp16", max_nonfinite=steps,
                       scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 24, growth_interval=steps))
    stats = trainer.train_one_epoch(_batches(steps, 2), epoch=0, num_epochs=1)
    skipped = round(math.log2(2.0 ** 24 / trainer.scaler.get_scale()))  # each skip halves the scale
    assert 0 < skipped < steps and trainer.counters.nonfinite == 0 and trainer.counters.global_step == steps
    assert math.isfinite(stats["loss"])


def test_fp16_nonfinite_losses_count_and_an_all_skipped_run_stops():
    """The old rule never counted scaler skips, so a run whose every update was skipped "finished";
    now NaN losses count and the run stops naming the steps; its epoch loss would be NaN, not 0."""
    trainer = _trainer(FakeModel(nan=True), accumulation=1, steps=4, precision="fp16", max_nonfinite=2,
                       scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 4))
    with pytest.raises(NonFiniteLossError, match=r"optimizer steps 1-3"):
        trainer.train_one_epoch(_batches(4, 2), epoch=0, num_epochs=1)
    lenient = _trainer(FakeModel(nan=True), accumulation=1, steps=2, precision="fp16", max_nonfinite=5,
                       scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 4))
    stats = lenient.train_one_epoch(_batches(2, 2), epoch=0, num_epochs=1)
    assert math.isnan(stats["loss"]) and lenient.counters.nonfinite == 2


def test_bf16_trains_and_stays_finite():
    model = FakeModel()
    trainer = _trainer(model, accumulation=2, steps=2, precision="bf16")
    stats = trainer.train_one_epoch(_batches(4, 2), epoch=0, num_epochs=1)
    assert torch.isfinite(torch.tensor(stats["loss"]))
    assert all(p.dtype == torch.float32 for p in model.parameters())


class _ViewModel(nn.Module):
    """Action logits = the first K values of the clip (views differ), identity = fixed."""

    def forward(self, clips: torch.Tensor, privacy_grad_scale: float = 1.0):
        flat = clips.flatten(1)
        return flat[:, :K], {"identity": flat[:, K:K + P]}


def test_predict_averages_softmax_over_views():
    clips = torch.zeros(2, 2, 1, 1, 1, K + P)  # [B, V, T=1, 1, 1, W]
    clips[0, 0, ..., 0] = 5.0  # video 0: view 0 says class 0 strongly,
    clips[0, 1, ..., 1] = 1.0  # view 1 says class 1 weakly -> average picks class 0
    clips[1, :, ..., 2] = 3.0
    batch = {"frames": clips, "label": torch.tensor([0, 2]), "identity": torch.tensor([0, 1]),
             "index": torch.tensor([7, 3]), "camera": torch.tensor([1, 2])}
    pred = predict(_ViewModel(), [batch], torch.device("cpu"), "fp32")
    assert pred["action_topk"][:, 0].tolist() == [0, 2]
    assert int(pred["num_views"]) == 2
    assert pred["index"].tolist() == [7, 3] and pred["camera"].tolist() == [1, 2]
    assert pred["identity_topk"][:, 0].tolist() == [0, 0] and pred["identity"].tolist() == [0, 1]


def test_metrics_values_and_identity_subset():
    pred = {
        "label": torch.tensor([0, 0, 1, 2, 2]),
        "camera": torch.tensor([1, 2, 1, 2, 2]),
        "identity": torch.tensor([0, 1, 2, 0, 1]),
        "action_topk": torch.tensor([[0, 1], [1, 0], [1, 2], [0, 1], [2, 0]]),
        "identity_topk": torch.tensor([[0, 1], [0, 2], [2, 0], [1, 0], [1, 0]]),
        "num_views": torch.tensor(6),
    }
    metrics, per_class, counts = compute_metrics(pred, num_classes=4, train_labels={"identity": {0, 1}})
    assert metrics["acc1"] == pytest.approx(60.0)
    assert metrics["acc5"] == pytest.approx(80.0)  # k capped by the 2 columns here
    assert metrics["mean_class_acc"] == pytest.approx((50 + 100 + 50) / 3)
    assert counts.tolist() == [2, 1, 2, 0] and torch.isnan(per_class[3])
    assert metrics["id_videos"] == 4  # identity 2 never occurs in training
    assert metrics["id_acc1"] == pytest.approx(50.0) and metrics["id_acc5"] == pytest.approx(75.0)
    assert metrics["heads"]["identity"] == {"acc1": 50.0, "acc5": 75.0, "videos": 4}
    # per camera: camera 1 holds videos 0 and 2 (actions right, right), camera 2 videos 1, 3, 4
    assert metrics["per_camera"]["1"]["acc1"] == pytest.approx(100.0)
    assert metrics["per_camera"]["2"]["acc1"] == pytest.approx(100 / 3)
    assert metrics["per_camera"]["2"]["mean_class_acc"] == pytest.approx((0 + 50) / 2)
    assert metrics["per_camera"]["1"]["heads"]["identity"] == {"acc1": 100.0, "acc5": 100.0, "videos": 1}
    assert metrics["per_camera"]["2"]["heads"]["identity"]["acc1"] == pytest.approx(100 / 3)
    none_known, _, _ = compute_metrics(pred, num_classes=4, train_labels={"identity": {5}})
    assert none_known["id_videos"] == 0 and none_known["id_acc1"] is None and none_known["id_acc5"] is None


def test_class_camera_table_and_files(tmp_path):
    pred = {"label": torch.tensor([0, 0, 1, 1]), "camera": torch.tensor([1, 3, 1, 1]),
            "action_topk": torch.tensor([[0], [1], [1], [0]])}
    cameras, acc, counts = class_camera_table(pred, num_classes=3)
    assert cameras == [1, 3] and counts.tolist() == [[1, 1], [2, 0], [0, 0]]
    assert acc[0].tolist() == [100.0, 0.0] and acc[1, 0] == 50.0 and torch.isnan(acc[1, 1])
    write_class_camera(str(tmp_path / "t.csv"), str(tmp_path / "t.png"), pred, 3, ["a", "b", "c"])
    rows = (tmp_path / "t.csv").read_text().splitlines()
    assert rows[0] == "class_id,class_name,camera,videos,acc1" and rows[1:4] == [
        "0,a,1,1,100.00", "0,a,3,1,0.00", "1,b,1,2,50.00"] and rows[4] == "1,b,3,0,"
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert topk_accuracy(torch.tensor([[1, 2]]), torch.tensor([2]), 1).tolist() == [False]


def test_first_occurrence_keeps_one_row_per_video():
    unique, first = _first_occurrence(torch.tensor([4, 2, 4, 9, 2]))
    assert unique.tolist() == [2, 4, 9] and first.tolist() == [1, 0, 3]


def test_real_model_accumulation_through_main_equals_one_big_batch(tmp_path, make):
    import main as launcher

    root = tmp_path / "frames"
    for i, name in enumerate(make.tiny_names()):
        make.write_frame_folder(root / name, make.moving_frames(i))
    opts = ["DATA.ROOT", str(root), "DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "16", "DATA.FD_STRIDE", "2",
            "DATA.NUM_WORKERS", "0", "DATA.NUM_CLASSES", "3", "MODEL.PRIVACY_CLASSES", "[3]",
            "DATA.SYNTHETIC.ENABLED", "False", "MODEL.CUSTOM.LAYERS", "1", "MODEL.CUSTOM.TEXT_LAYERS", "1",
            "MODEL.CUSTOM.PATCH_SIZE", "8", "TEST.NUM_CLIP", "1", "TRAIN.EPOCHS", "1", "TRAIN.WARMUP_EPOCHS", "0",
            "AUG.MIXUP", "0.0", "AUG.CUTMIX", "0.0", "TRAIN.EPS", "1.0e-4"]  # eps: see test_distributed
    runs = {"big": ["--batch-size", "4"], "acc": ["--batch-size", "2", "--accumulation-steps", "2"]}
    for name, flags in runs.items():
        assert launcher.main(["--output", str(tmp_path / name), *flags, "--opts", *opts]) == 0
    big = torch.load(tmp_path / "big" / "last.pth", weights_only=True)
    acc = torch.load(tmp_path / "acc" / "last.pth", weights_only=True)
    assert big["global_step"] == acc["global_step"] == 2
    for key, value in big["model"].items():
        torch.testing.assert_close(acc["model"][key], value, rtol=1e-4, atol=1e-6, msg=key)
