"""STPrivacy (models/stprivacy.py, models/token_select.py): the keep ratio is honoured exactly at test
time, dropped tokens receive no attention, gradients flow through the selection while training, and
the encoder trains and is attacked through the project's trainer and attack tool."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

import main as launcher
from models import build_input_encoder, build_model, token_select
from models.clip import ResidualAttentionBlock
from models.encoders import clip_normalize
from models.stprivacy import STPrivacyEncoder
from tools import privacy_attack, tradeoff
from trainers.checkpoint import FORMAT_VERSION
from utils.config import ConfigError, load_config

SIDE, FRAMES, PATCH = 32, 8, 8  # 4 slices of 16 tubelets: N = 64


def _encoder(**kwargs) -> STPrivacyEncoder:
    torch.manual_seed(0)
    return STPrivacyEncoder(image_size=SIDE, num_frames=FRAMES, patch=PATCH, **kwargs)


def _clips(b: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, FRAMES, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))


def test_tubelets_are_the_tubelet_convolution_and_invert_to_the_video():
    enc = _encoder()
    clips = _clips()
    tubelets = enc.tubelets(clips)  # [B, N, 3 * 2 * P * P]
    assert tubelets.shape == (3, 64, 3 * 2 * PATCH * PATCH)
    assert torch.equal(enc.to_video(tubelets), clips)
    tokens = enc.conv1(clips.transpose(1, 2)).flatten(2).transpose(1, 2)  # the Conv3d 2 x P x P
    torch.testing.assert_close(tokens, tubelets @ enc.conv1.weight.flatten(1).T, rtol=1e-4, atol=1e-4)
    embedded = enc.ln_pre(tokens + enc.positional_embedding)  # embed() runs conv1 as that matmul
    torch.testing.assert_close(enc.embed(clips), embedded, rtol=1e-4, atol=1e-4)
    assert enc.conv1.kernel_size == enc.conv1.stride == (2, PATCH, PATCH)


def test_keep_counts_round_per_slice_and_end_at_the_keep_ratio():
    assert token_select.keep_counts(0.7, 3, 16) == [14, 13, 11]  # 16 * 0.7 ** (1/3, 2/3, 1)
    assert token_select.keep_counts(0.29, 1, 100) == [29]  # int(100 * 0.29) would give 28
    assert token_select.keep_counts(0.01, 2, 16) == [2, 1]  # at least one tubelet per slice
    assert token_select.keep_counts(1.0, 3, 16) == [16, 16, 16]
    for ratio in (0.1, 0.33, 0.5, 0.9):
        counts = token_select.keep_counts(ratio, 3, 196)
        assert counts == sorted(counts, reverse=True) and counts[-1] == int(196 * ratio + 0.5)


def _train(enc: STPrivacyEncoder, steps: int = 2) -> None:
    optimizer = torch.optim.AdamW(enc.parameters(), lr=1e-2)
    target = _clips(b=2, seed=9)
    for _ in range(steps):
        enc.train()
        loss = ((enc.encode_clips(_clips(b=2)) - target) ** 2).mean() + enc.aux_losses()["ratio"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_keep_ratio_is_honoured_exactly_at_test_and_can_change_after_training():
    enc = _encoder()
    _train(enc)
    enc.eval()
    clips = _clips(b=4)
    kept_per_clip = {}
    for ratio in (0.1, 0.3, 0.5, 0.7, 1.0):
        enc.keep_ratio = ratio
        k = int(16 * ratio + 0.5)
        with torch.no_grad():
            tubelets, keep = enc.anonymise(clips)
            video = enc.encode_clips(clips)
        per_slice = keep.view(4, 4, 16).sum(-1)  # [B, T']
        assert torch.equal(per_slice, torch.full((4, 4), float(k))), ratio
        assert set(keep.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(tubelets[keep == 0], torch.zeros_like(tubelets[keep == 0]))  # dropped: blank
        assert bool((tubelets[keep == 1].abs().sum(-1) > 0).all())
        kept_per_clip[ratio] = int(keep[0].sum())
        assert video.shape == clips.shape and torch.equal(video, enc.to_video(tubelets))
    assert kept_per_clip == {0.1: 8, 0.3: 20, 0.5: 32, 0.7: 44, 1.0: 64}  # 4 slices x k
    assert "keep_ratio" not in str(list(enc.state_dict()))  # a deployment setting, not a weight
    with pytest.raises(ValueError):
        enc.keep_ratio = 0.0


def test_dropped_tokens_receive_no_attention():
    """A block under the policy mask: perturbing the dropped tokens leaves the kept tokens' outputs
    unchanged, and they equal the block run on the kept tokens alone (what test time does)."""
    torch.manual_seed(0)
    block = ResidualAttentionBlock(64, 1).double()
    x = torch.randn(2, 10, 64, dtype=torch.double)
    keep = torch.tensor([[1, 0, 1, 1, 0, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1, 1, 1, 0, 0, 0]], dtype=torch.double)
    mask = token_select.policy_key_mask(keep, torch.double)  # [B, N, N]
    kept, dropped = keep.bool(), ~keep.bool()
    assert bool((mask[kept[:, None, :].expand_as(mask)] == 0).all())  # kept keys: visible to every query
    assert bool(torch.isneginf(mask[dropped[:, None, :].expand_as(mask)]).sum() == int(dropped.sum()) * 9)
    assert not bool(torch.isneginf(mask.diagonal(dim1=1, dim2=2)).any())  # each token sees itself
    out = block(x, mask)
    noisy = x + 100 * torch.randn_like(x) * dropped[..., None]
    out_noisy = block(noisy, mask)
    assert torch.equal(out[kept], out_noisy[kept])
    assert not torch.allclose(out[dropped], out_noisy[dropped])
    for b in range(2):
        torch.testing.assert_close(out[b, kept[b]], block(x[b:b + 1, kept[b]])[0])


def test_training_masking_equals_test_dropping(monkeypatch):
    """With the training decisions forced to the test top-k, the masked training forward (all N
    tokens) gives the test forward's output (tokens removed): DynamicViT's equivalence."""
    enc = _encoder().double()
    counts = iter(enc.keep_counts())

    def topk_decisions(log_probs, previous, tau):
        scores = log_probs[..., token_select.KEEP].masked_fill(previous == 0, float("-inf"))
        top = scores.view(scores.shape[0], enc.slices, -1).topk(next(counts), dim=-1).indices
        hard = torch.zeros_like(scores).view(top.shape[0], enc.slices, -1).scatter(2, top, 1.0)
        return hard.flatten(1) * previous

    monkeypatch.setattr(token_select, "gumbel_keep", topk_decisions)
    clips = _clips(b=2).double()
    enc.train()
    train_out, train_keep = enc.anonymise(clips)
    enc.eval()
    test_out, test_keep = enc.anonymise(clips)
    assert torch.equal(train_keep, test_keep)
    torch.testing.assert_close(train_out, test_out, rtol=1e-9, atol=1e-9)


def test_gradients_flow_through_the_selection_while_training():
    """The task loss alone (no ratio loss) reaches every keep predictor through the straight-through
    Gumbel decisions; the forward decisions are hard."""
    enc = _encoder().train()
    torch.manual_seed(5)
    tubelets, keep = enc.anonymise(_clips())
    assert torch.equal(keep[keep < 0.5], torch.zeros_like(keep[keep < 0.5]))
    torch.testing.assert_close(keep[keep >= 0.5], torch.ones_like(keep[keep >= 0.5]))
    assert 0 < float(keep.detach().mean()) < 1
    enc.aux_losses()  # the ratio loss is left out on purpose
    (tubelets * torch.randn_like(tubelets)).sum().backward()
    for i, predictor in enumerate(enc.predictors):
        grads = [p.grad for p in predictor.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), i
        assert sum(float(g.abs().sum()) for g in grads) > 0, i
    assert float(enc.conv1.weight.grad.abs().sum()) > 0


def test_ratio_loss_values_and_its_gradient():
    ones = [torch.ones(2, 4, 16), torch.ones(2, 4, 16)]
    targets = token_select.stage_ratios(0.49, 2)
    assert targets == pytest.approx([0.7, 0.49])
    assert float(token_select.ratio_loss(ones, targets)) == pytest.approx((0.3 ** 2 + 0.51 ** 2) / 2)
    enc = _encoder(ratio_weight=2.0).train()
    enc.encode_clips(_clips())
    ratio = enc.aux_losses()["ratio"]
    assert ratio.ndim == 0 and ratio > 0 and enc.aux_losses() == {}  # handed over once
    ratio.backward()
    assert float(enc.predictors[0].out_mlp[-1].bias.grad.abs().sum()) > 0


def test_config_validates_stprivacy_in_one_line():
    base = ["MODEL.ENCODER", "stprivacy"]
    cfg = load_config(None, base)  # the demo config: 32 px, 8 frames, P = 8
    assert isinstance(build_input_encoder(cfg), STPrivacyEncoder)
    bad = {"even": ["DATA.NUM_FRAMES", "7"], "multiple": ["MODEL.STPRIVACY.PATCH", "6"],
           "PRUNE_LAYERS": ["MODEL.STPRIVACY.PRUNE_LAYERS", "[3, 1]"], "KEEP_RATIO": ["MODEL.STPRIVACY.KEEP_RATIO", "0.0"]}
    for word, opts in bad.items():
        with pytest.raises(ConfigError, match=word) as info:
            load_config(None, base + opts)
        assert "\n" not in str(info.value)
    load_config(None, ["DATA.NUM_FRAMES", "7"])  # other encoders take any T


def _tiny_opts(root) -> list[str]:
    return ["DATA.ROOT", str(root), "DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "16", "DATA.NUM_WORKERS", "0",
            "DATA.NUM_CLASSES", "3", "MODEL.PRIVACY_CLASSES", "[3]", "DATA.SYNTHETIC.ENABLED", "False",
            "MODEL.CUSTOM.LAYERS", "1", "MODEL.CUSTOM.TEXT_LAYERS", "1", "MODEL.CUSTOM.PATCH_SIZE", "8",
            "MODEL.ENCODER", "stprivacy", "MODEL.STPRIVACY.PATCH", "8", "TEST.NUM_CLIP", "1",
            "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "4", "AUG.MIXUP", "0.0", "AUG.CUTMIX", "0.0"]


def test_inside_mspnet_forward_backward_and_parameter_groups(tmp_path):
    cfg = load_config(None, _tiny_opts(tmp_path))
    model = build_model(cfg, ["a", "b", "c"]).train()
    frames = torch.randint(0, 256, (2, 4, 1, 3, 16, 16), dtype=torch.uint8)
    action, privacy = model(frames, privacy_grad_scale=-1.0)
    assert action.shape == (2, 3) and privacy["identity"].shape == (2, 3)
    aux = model.aux_losses()
    assert model.aux_loss_names == ("ratio",) and set(aux) == {"ratio"}
    (action.sum() + privacy["identity"].sum() + aux["ratio"]).backward()
    encoder = model.input_encoder
    assert all(p.grad is not None for p in encoder.parameters())
    assert "input_encoder.positional_embedding" in model.no_weight_decay()
    assert {f"input_encoder.{n}" for n, _ in encoder.named_parameters()} <= model.new_parameter_names()
    assert model.aux_losses() == {} and model.eval()(frames)[0].shape == (2, 3)


def test_trained_by_main_and_tested_with_another_keep_ratio(tmp_path, make):
    root = tmp_path / "frames"
    for i, name in enumerate(make.tiny_names()):
        make.write_frame_folder(root / name, make.moving_frames(i))
    opts = _tiny_opts(root) + ["TRAIN.EPOCHS", "1", "TRAIN.WARMUP_EPOCHS", "0", "TRAIN.PRIVACY_LOSS", "adversarial",
                               "TRAIN.ADV_STEPS", "2"]
    run = tmp_path / "run"
    assert launcher.main(["--output", str(run), "--opts", *opts]) == 0
    assert "ratio" in (run / "log.txt").read_text() and (run / "metrics.json").is_file()
    assert launcher.main(["--output", str(run), "--only_test", "True", "--resume", str(run / "last.pth"),
                          "--opts", *opts, "MODEL.STPRIVACY.KEEP_RATIO", "0.5"]) == 0
    assert (run / "test_config.yaml").is_file() and "KEEP_RATIO: 0.5" in (run / "test_config.yaml").read_text()
    state = torch.load(run / "last.pth", weights_only=True)["model"]
    frames = torch.randint(0, 256, (1, 4, 1, 3, 16, 16), dtype=torch.uint8)
    kept = {}
    for ratio in ("0.7", "0.5"):
        model = build_model(load_config(None, opts + ["MODEL.STPRIVACY.KEEP_RATIO", ratio]), ["a", "b", "c"])
        model.load_state_dict(state)
        with torch.no_grad():
            kept[ratio] = int(model.eval().input_encoder.anonymise(clip_normalize(frames[:, :, 0]))[1].sum())
    assert kept == {"0.7": 2 * 3, "0.5": 2 * 2}  # 2 slices x round(4 * ratio)


def _write_attack_data(root) -> None:
    """12 frame folders: 3 performers (colours) x replications 1, 2 x setups 1, 2, 6 frames of 16 px."""
    colours = ((220, 40, 40), (40, 220, 40), (40, 40, 220))
    rng = np.random.default_rng(0)
    for p in (1, 2, 3):
        for r in (1, 2):
            for s in (1, 2):
                folder = root / f"S{s:03d}C001P{p:03d}R{r:03d}A001"
                folder.mkdir(parents=True)
                for t in range(6):
                    frame = np.clip(np.full((16, 16, 3), colours[p - 1]) + rng.normal(0, 10, (16, 16, 3)), 0, 255)
                    cv2.imwrite(str(folder / f"{t:05d}.jpg"), cv2.cvtColor(frame.astype(np.uint8), cv2.COLOR_RGB2BGR))


def test_attack_tool_with_a_video_attacker_on_the_anonymised_video(tmp_path):
    """The paper's video-level protocol: a fresh video attacker on the encoder's output (its
    weights from the checkpoint, top-k at test), through tools/privacy_attack.py."""
    _write_attack_data(tmp_path / "data")
    opts = _tiny_opts(tmp_path / "data") + ["DATA.NUM_CLASSES", "2", "MODEL.PRIVACY_CLASSES", "[3]"]
    cfg = load_config(None, opts)
    torch.manual_seed(0)
    model = build_model(cfg, ["a", "b"])
    torch.save({"format_version": FORMAT_VERSION, "model": model.state_dict()}, tmp_path / "last.pth")
    args = privacy_attack.parse_args(["--output", "unused", "--target", "planes", "--resume", str(tmp_path / "last.pth")])
    _, _, x_train, _, x_test, _ = privacy_attack.build_views(cfg, args, torch.device("cpu"))
    assert x_train.shape == (6, 4, 3, 16, 16) and x_test.shape == (6, 4, 3, 16, 16)
    blank = (model.input_encoder.tubelets(x_test).abs().sum(-1) == 0).float().mean()
    assert float(blank) == pytest.approx(1 - 3 / 4)  # round(4 * 0.7) = 3 of 4 tubelets kept per slice
    out = tmp_path / "out"
    assert privacy_attack.main(["--output", str(out), "--target", "planes", "--attacker", "temporal", "--epochs", "1",
                                "--batch-size", "4", "--resume", str(tmp_path / "last.pth"), "--opts", *opts]) == 0
    result = json.loads((out / "privacy.json").read_text())
    assert result["encoder"] == "stprivacy" and result["attacker"] == "temporal" and result["videos"] == 6
    args = tradeoff.parse_args(["--output", "x", "--video-attacker", "r3d_18", "--encoders", "stprivacy"])
    assert args.encoders == ["stprivacy"] and args.video_attacker == "r3d_18"
