"""Original-release checkpoints: names, conversion round trip, pickle opt-in, the tool."""
import pytest
import torch
from yacs.config import CfgNode

import models
from models.convert import (CheckpointError, convert_original_state_dict, is_original_state_dict,
                            load_checkpoint_file, to_original_state_dict)
from tools import convert_checkpoint
from utils.config import load_config
from utils.errors import USER_ERROR_EXIT_CODE

CLASSES = ["drink water", "eat meal", "clapping"]
FRAMES, SIZE = 2, 16
# names of the original release listed in DESIGN section 2
ORIGINAL_NAMES = [
    "visual.conv0.weight", "visual.conv1.weight", "visual.class_embedding", "visual.proj",
    "visual.transformer.resblocks.0.message_fc.weight", "visual.transformer.resblocks.1.message_attn.in_proj_weight",
    "sft.positional_embedding", "sft.resblocks.1.mlp.c_proj.bias", "prompts_visual_ln.weight",
    "prompts_visual_proj", "prompts_generator.norm.bias", "prompts_generator.alpha",
    "prompts_generator.decoder.2.cross_attn.q_proj.weight", "prompts_generator.decoder.2.cross_attn.v_proj.weight",
    "prompts_generator.decoder.0.cross_attn.proj.bias", "prompts_generator.decoder.0.norm3.weight",
    "prompts_generator.decoder.0.mlp.0.weight", "prompts_generator.decoder.1.mlp.3.bias",
    "id_classifier.weight", "logit_scale", "token_embedding.weight", "positional_embedding",
    "transformer.resblocks.0.attn.in_proj_weight", "ln_final.weight", "text_projection",
]


def _cfg(pretrained="none", *opts):
    return load_config(None, ["MODEL.ARCH", "custom", "MODEL.PRETRAINED", pretrained, "MODEL.FREEZE", "[]",
                              "DATA.NUM_FRAMES", str(FRAMES), "DATA.INPUT_SIZE", str(SIZE),
                              "MODEL.PRIVACY_CLASSES", "[4]", "MODEL.TEMPORAL_LAYERS", "2",
                              "MODEL.PROMPT_LAYERS", "3", *opts])


@pytest.fixture(scope="module")
def trained():
    """A model with every parameter perturbed, its logits on a fixed batch, and the batch."""
    torch.manual_seed(0)
    model = models.build_model(_cfg(), CLASSES).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    clips = torch.randint(0, 256, (2, FRAMES, 6, 1, SIZE, SIZE), dtype=torch.uint8)  # IFNS windows, k = 4
    with torch.no_grad():
        logits = model(clips)
    return model, clips, logits


def _flat(outputs):
    """(action logits, {head: logits}) -> [action, head logits ...]."""
    return [outputs[0], *outputs[1].values()]


def _original_file(tmp_path, model):
    path = tmp_path / "original.pth"
    config = CfgNode({"MODEL": CfgNode({"ARCH": "ViT-B/32"})})
    torch.save({"model": to_original_state_dict(model.state_dict()), "optimizer": {}, "lr_scheduler": {},
                "max_accuracy": 0.5, "epoch": 3, "config": config}, path)
    return path


def test_original_names_and_layer_counts_from_keys(trained):
    model = trained[0]
    original = to_original_state_dict(model.state_dict())
    assert set(ORIGINAL_NAMES) <= set(original)
    assert is_original_state_dict(original) and not is_original_state_dict(model.state_dict())
    converted = convert_original_state_dict(original)
    assert converted.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(converted[key], value), key


def test_pickled_original_needs_the_opt_in(tmp_path, trained):
    path = _original_file(tmp_path, trained[0])
    with pytest.raises(CheckpointError, match="--allow-pickle"):
        load_checkpoint_file(str(path), allow_pickle=False)
    assert "config" in load_checkpoint_file(str(path), allow_pickle=True)
    with pytest.raises(CheckpointError, match="MODEL.ALLOW_PICKLE"):
        models.build_model(_cfg(str(path)), CLASSES)


def test_original_checkpoint_as_pretrained_gives_the_same_logits(tmp_path, trained):
    model, clips, logits = trained
    path = _original_file(tmp_path, model)
    loaded = models.build_model(_cfg(str(path), "MODEL.ALLOW_PICKLE", "True"), CLASSES).eval()
    with torch.no_grad():
        again = loaded(clips)
    assert _flat(again) and all(torch.equal(a, b) for a, b in zip(_flat(again), _flat(logits)))


def test_tool_converts_and_the_result_loads_with_the_same_logits(tmp_path, trained, capsys):
    model, clips, logits = trained
    src, dst = _original_file(tmp_path, model), tmp_path / "converted.pth"
    assert convert_checkpoint.main([str(src), str(dst)]) == USER_ERROR_EXIT_CODE
    assert "--allow-pickle" in capsys.readouterr().err and not dst.exists()
    assert convert_checkpoint.main([str(src), str(dst), "--allow-pickle"]) == 0
    saved = torch.load(dst, weights_only=True)
    assert saved["converted_from"].endswith("original.pth")
    loaded = models.build_model(_cfg(str(dst)), CLASSES).eval()
    with torch.no_grad():
        again = loaded(clips)
    assert _flat(again) and all(torch.equal(a, b) for a, b in zip(_flat(again), _flat(logits)))


def test_tool_refuses_a_file_that_is_not_original(tmp_path, trained):
    src = tmp_path / "ours.pth"
    torch.save({"model": trained[0].state_dict()}, src)
    assert convert_checkpoint.main([str(src), str(tmp_path / "out.pth")]) == USER_ERROR_EXIT_CODE
    assert convert_checkpoint.main([str(tmp_path / "absent.pth"), str(tmp_path / "out.pth")]) == USER_ERROR_EXIT_CODE


def test_incomplete_prompt_projection_is_reported():
    with pytest.raises(CheckpointError, match="layer 0"):
        convert_original_state_dict({"prompts_generator.alpha": torch.ones(2),
                                     "prompts_generator.decoder.0.cross_attn.q_proj.weight": torch.ones(2, 2)})


def test_release_pku_heads_convert_and_give_the_release_logits():
    """A P3AR-PKU release state dict (``id_classifier_22``, ``uuu_classifier`` ... ``yyy_classifier``):
    each converted head's logits equal the release's ``head(video / |video|)`` (mspnet_pku.py)."""
    torch.manual_seed(0)
    heads = {"identity": 22, "gender": 2, "hairstyle": 5, "glasses": 2, "upper": 9, "lower": 12}
    opts = ("DATA.DATASET", "pku", "MODEL.PRIVACY_HEADS", str(list(heads)), "MODEL.PRIVACY_CLASSES",
            str(list(heads.values())), "TRAIN.PRIVACY_WEIGHTS", str([0.2] + [0.05] * 5))
    model = models.build_model(_cfg("none", *opts), CLASSES).eval()
    release_names = {"identity": "id_classifier_22", "gender": "uuu_classifier", "hairstyle": "vvv_classifier",
                     "glasses": "www_classifier", "upper": "xxx_classifier", "lower": "yyy_classifier"}
    original = to_original_state_dict(model.state_dict())
    release = {k: v for k, v in original.items() if not k.startswith("id_classifier.")}
    for head, name in release_names.items():
        release[f"{name}.weight"] = torch.randn(heads[head], 64)
        release[f"{name}.bias"] = torch.randn(heads[head])
    converted = convert_original_state_dict(release)
    assert converted.keys() == model.state_dict().keys()
    model.load_state_dict(converted)
    clips = torch.randint(0, 256, (2, FRAMES, 6, 1, SIZE, SIZE), dtype=torch.uint8)
    with torch.no_grad():
        _, privacy, video = model(clips, return_video=True)
        raw = model.encode_video(clips)
    torch.testing.assert_close(video, raw / raw.norm(dim=-1, keepdim=True))
    for head, name in release_names.items():
        expected = torch.nn.functional.linear(video, release[f"{name}.weight"], release[f"{name}.bias"])
        torch.testing.assert_close(privacy[head], expected, rtol=0, atol=1e-6)
