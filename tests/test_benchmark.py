"""The benchmark (tools/bench, run as tools/benchmark.py) on a tiny config: the JSON schema,
consistent figures, that the timed step is the run's Trainer.train_step, exact memory tracking."""
import json

import torch

from tools import benchmark
from trainers.trainer import Trainer

TINY = ["DATA.SYNTHETIC.SIZE", "28", "DATA.SYNTHETIC.NUM_FRAMES", "12", "DATA.SYNTHETIC.NUM_ACTIONS", "2",
        "DATA.SYNTHETIC.NUM_PERFORMERS", "2", "DATA.SYNTHETIC.NUM_SETUPS", "2",
        "DATA.SYNTHETIC.NUM_CAMERAS", "1", "DATA.SYNTHETIC.NUM_REPLICATIONS", "1",
        "DATA.INPUT_SIZE", "16", "DATA.NUM_FRAMES", "4", "MODEL.CUSTOM.LAYERS", "1",
        "MODEL.CUSTOM.TEXT_LAYERS", "1", "TEST.NUM_CLIP", "1"]


def test_benchmark_json_schema(tmp_path, monkeypatch):
    out = tmp_path / "bench.json"
    opts = TINY + ["DATA.SYNTHETIC.CACHE", str(tmp_path / "cache"), "TRAIN.PRIVACY_WEIGHTS", "[0.5]"]
    steps = []  # (trainer, global step after the call) of every Trainer.train_step call
    train_step = Trainer.train_step

    def counted_train_step(self, *args, **kwargs):
        result = train_step(self, *args, **kwargs)
        steps.append((self, self.counters.global_step))
        return result

    monkeypatch.setattr(Trainer, "train_step", counted_train_step)
    assert benchmark.main(["--what", "all", "--json", str(out), "--reps", "1", "--warmup", "0",
                           "--batch-size", "2", "--data-clips", "2", "--peak-sizes", "64",
                           "--opts", *opts]) == 0
    result = json.loads(out.read_text())
    assert result["dtype"] == "fp32" and result["device"]
    train = result["train"]
    for key in ("step_s", "clips_per_s", "flops_per_step", "achieved_flops", "peak_flops", "mfu",
                "peak_mem_bytes", "act_bytes", "step_peak_bytes"):
        assert train[key] > 0, key
    assert abs(train["clips_per_s"] - 2 / train["step_s"]) < 1e-6 * train["clips_per_s"]
    assert abs(train["mfu"] - train["achieved_flops"] / train["peak_flops"]) < 1e-9
    assert abs(train["achieved_flops"] - train["flops_per_step"] / train["step_s"]) < 1e-6 * train["achieved_flops"]
    # the timed step is the run's Trainer.train_step: counters, scheduler, the privacy term
    assert train["timed_step"] == "Trainer.train_step"
    first_trainer = steps[0][0]
    train_calls = [step for trainer, step in steps if trainer is first_trainer]
    assert train_calls == list(range(1, len(train_calls) + 1)) and train["global_step"] == len(train_calls)
    assert train["scheduler_steps"] == train["global_step"]
    losses = train["losses"]
    assert losses["identity"] > 0 and abs(losses["loss"] - (losses["action"] + 0.5 * losses["identity"])) < 1e-4
    assert train["privacy_loss"] == "aux" and train["grad_scaler"] is False
    # the demo freezes the text tower: training it adds its forward and backward at every step
    text = train["text_tower"]
    assert train["text_cached"] and text["text_frozen_flops_per_step"] == train["flops_per_step"]
    assert text["text_trained_flops_per_step"] > text["text_frozen_flops_per_step"]
    ckpt = result["checkpointing"]
    assert ckpt["on"]["act_bytes"] < ckpt["off"]["act_bytes"]  # recomputed blocks keep less
    assert result["eval"]["clips_per_s"] > 0
    for backend in ("math", "sdpa"):
        assert result["attention"][backend]["fwd_bwd_s"] > 0
    assert "available" in result["attention"]["triton"]
    for layout in ("video", "video_opencv", "video_luma", "video_luma_device", "frames", "precomputed",
                   "packed", "packed_short", "packed_short_train", "packed_crop_device_train", "jpeg_baseline"):
        assert result["data"][layout]["clips_per_s"] > 0, layout
    assert result["data"]["ratios"]["packed_over_precomputed"] > 0
    device = result["data"]["packed_short"]  # input-size store: the windows, planes by the encoder
    assert device["device_planes_ms"] > 0
    assert device["item_bytes"] == 4 * (4 + 2) * 16 * 16  # T (k + 2) S S uint8, k = FD_STRIDE 4
    frames = result["data"]["video_luma_device"]  # 28 px frames cropped and resized on the device
    assert frames["device_planes_ms"] > 0 and frames["device_planes_max_abs_diff_levels"] < 3
    assert frames["item_bytes"] == 11 * 28 * 28  # the frames t-5..t of 4 of 12 frames, uncropped
    assert result["data"]["stages"]["ms_per_clip"]["decode_video_luma"] > 0


def test_flop_count_includes_cpu_fused_attention():
    q = torch.randn(2, 3, 5, 8, requires_grad=True)
    k = torch.randn(2, 3, 6, 8, requires_grad=True)
    v = torch.randn(2, 3, 6, 8, requires_grad=True)
    forward = 2 * (2 * 3 * 5 * 6 * 8) * 2  # q k^T and p v: 2 FLOPs per multiply-add
    flops = benchmark.count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    assert flops == forward


def test_live_tensor_memory_is_exact():
    x = torch.randn(100, 100, requires_grad=True)  # 40 000 bytes, created outside: not counted
    tracker = benchmark.LiveTensorMemory()
    with tracker:
        y = (x * 2).relu()  # x * 2 is freed once relu has run; relu's output is kept for backward
        assert tracker.current == 40_000 and tracker.peak == 80_000
        loss = y.sum()
        loss.backward()
        del y, loss
        assert tracker.current == 40_000  # x.grad
