"""Loading CLIP weights: OpenAI state dicts and TorchScript archives, open_clip checkpoints, errors."""
import logging
import warnings

import open_clip
import pytest
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from torch import nn

import models
from models.convert import CheckpointError
from utils.config import load_config
from utils.errors import UserError

CLASSES = ["drink water", "clapping"]
WIDTH, LAYERS, PATCH, SIZE, FRAMES = 64, 2, 4, 16, 2
OPENAI_EXTRAS = {"input_resolution": torch.tensor(SIZE), "context_length": torch.tensor(77),
                 "vocab_size": torch.tensor(49408)}


def _cfg(pretrained: str, *opts):
    return load_config(None, ["MODEL.ARCH", "custom", "MODEL.PRETRAINED", pretrained,
                              "MODEL.FREEZE", "[]", "DATA.NUM_FRAMES", str(FRAMES),
                              "DATA.INPUT_SIZE", str(SIZE), "MODEL.PRIVACY_CLASSES", "[3]", *opts])


def _openai_state_dict(seed: int = 0, *opts) -> tuple[dict, nn.Module]:
    """A CLIP state dict under OpenAI names: our model's CLIP towers without the new modules."""
    torch.manual_seed(seed)
    donor = models.build_model(_cfg("none", *opts), CLASSES)
    new = donor.new_parameter_names()
    return {k: v for k, v in donor.state_dict().items() if k not in new}, donor


def _check_clip_parts_loaded(model, state_dict):
    own = model.state_dict()
    for key, value in state_dict.items():
        if key in own:
            assert torch.equal(own[key], value), key


def test_openai_state_dict_loads_towers_and_logs_one_summary(tmp_path, caplog):
    state_dict, _ = _openai_state_dict()
    path = tmp_path / "openai.pt"
    torch.save({**state_dict, **OPENAI_EXTRAS}, path)
    torch.manual_seed(5)
    with caplog.at_level(logging.INFO, logger="models.clip"):
        model = models.build_model(_cfg(str(path)), CLASSES)
    _check_clip_parts_loaded(model, state_dict)
    summary = [r.getMessage() for r in caplog.records if "loaded" in r.getMessage()]
    assert len(summary) == 1 and "CLIP" in summary[0] and "left at init" in summary[0]
    assert torch.equal(model.visual.conv0.weight.flatten(1), torch.eye(3))


def _script_tree(state_dict: dict) -> torch.jit.ScriptModule:
    root = nn.Module()
    for key, value in state_dict.items():
        *path, leaf = key.split(".")
        node = root
        for part in path:
            if not hasattr(node, part):
                node.add_module(part, nn.Module())
            node = getattr(node, part)
        if value.is_floating_point():
            node.register_parameter(leaf, nn.Parameter(value))
        else:
            node.register_buffer(leaf, value)
    with warnings.catch_warnings():  # torch.jit is deprecated; OpenAI still ships TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(root)


def test_openai_torchscript_archive_loads(tmp_path):
    state_dict, _ = _openai_state_dict()
    path = tmp_path / "ViT-tiny.pt"
    _script_tree({**state_dict, **OPENAI_EXTRAS}).save(str(path))
    model = models.build_model(_cfg(str(path)), CLASSES)
    _check_clip_parts_loaded(model, state_dict)


def test_open_clip_checkpoint_loads_and_text_matches_open_clip(tmp_path):
    torch.manual_seed(0)
    reference = open_clip.CLIP(
        embed_dim=WIDTH, quick_gelu=True,  # OpenAI CLIP activation
        vision_cfg=CLIPVisionCfg(width=WIDTH, layers=LAYERS, patch_size=PATCH, image_size=SIZE),
        text_cfg=CLIPTextCfg(width=WIDTH, layers=LAYERS, heads=WIDTH // 64, context_length=77,
                             vocab_size=49408)).eval()
    path = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}},
               path)
    model = models.build_model(_cfg(str(path)), CLASSES).eval()
    tokens = open_clip.tokenize(CLASSES)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(tokens), reference.encode_text(tokens))
    assert torch.equal(model.visual.conv1.weight, reference.visual.conv1.weight)


def test_positional_embedding_is_resized_to_the_input_grid(tmp_path):
    state_dict, _ = _openai_state_dict()
    path = tmp_path / "openai.pt"
    torch.save(state_dict, path)
    model = models.build_model(_cfg(str(path), "DATA.INPUT_SIZE", str(2 * SIZE)), CLASSES)
    grid = 2 * SIZE // PATCH
    assert model.visual.positional_embedding.shape == (1 + grid * grid, WIDTH)
    assert torch.equal(model.visual.positional_embedding[0], state_dict["visual.positional_embedding"][0])


def test_missing_file_names_it_and_says_how_to_start_without(tmp_path):
    missing = tmp_path / "ViT-B-32.pt"
    with pytest.raises(UserError, match="ViT-B-32.pt.*MODEL.PRETRAINED none"):
        models.build_model(_cfg(str(missing)), CLASSES)


def test_weights_of_another_size_are_refused(tmp_path):
    state_dict, _ = _openai_state_dict(0, "MODEL.CUSTOM.WIDTH", "128")
    path = tmp_path / "wide.pt"
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError, match="does not fit"):
        models.build_model(_cfg(str(path)), CLASSES)


def test_incomplete_clip_file_is_refused(tmp_path):
    state_dict, _ = _openai_state_dict()
    del state_dict["ln_final.weight"]
    path = tmp_path / "cut.pt"
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError, match="ln_final.weight"):
        models.build_model(_cfg(str(path)), CLASSES)
