"""Config loading: defaults, BASE inheritance, overrides and one-line user errors."""
from pathlib import Path

import pytest

from utils.config import ConfigError, load_config
from utils.paths import synthetic_cache_dir
from utils.errors import UserError


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_default_config_is_the_demo():
    cfg = load_config()
    assert cfg.MODEL.ARCH == "custom"
    assert cfg.DATA.SYNTHETIC.ENABLED
    assert cfg.is_frozen()


def test_base_inheritance_and_override_order(tmp_path):
    _write(tmp_path / "base.yaml", "DATA:\n  NUM_FRAMES: 16\n  FD_STRIDE: 2\nTRAIN:\n  LR: 0.5\n")
    child = _write(tmp_path / "child.yaml", "BASE: ['base.yaml']\nDATA:\n  NUM_FRAMES: 4\n")
    cfg = load_config(child, ["TRAIN.LR", "0.25", "MODEL.FREEZE", "['text']"])
    assert cfg.DATA.NUM_FRAMES == 4  # child beats base
    assert cfg.DATA.FD_STRIDE == 2  # base beats defaults
    assert cfg.TRAIN.LR == 0.25  # --opts beat files
    assert list(cfg.MODEL.FREEZE) == ["text"]


def test_opt_level_maps_onto_precision(tmp_path):
    cfg = load_config(None, ["TRAIN.OPT_LEVEL", "O1"])
    assert cfg.TRAIN.PRECISION == "fp16"
    assert load_config(None, ["TRAIN.OPT_LEVEL", "O0"]).TRAIN.PRECISION == "fp32"


@pytest.mark.parametrize("opts, needle", [
    (["DATA.NOPE", "1"], "unknown config key DATA.NOPE"),
    (["TRAIN.EPOCHS", "'ten'"], "TRAIN.EPOCHS"),
    (["MODEL.ATTN_BACKEND", "cuda"], "MODEL.ATTN_BACKEND"),
    (["MODEL.FREEZE", "['message']"], "MODEL.FREEZE"),
    (["TRAIN.BATCH_SIZE", "0"], "TRAIN.BATCH_SIZE"),
    (["DATA.NUM_FRAMES"], "KEY VALUE pairs"),
    (["MODEL.CUSTOM.EMBED_DIM", "32"], "MODEL.CUSTOM.EMBED_DIM must be a positive multiple of 64"),
    (["MODEL.CUSTOM.TEXT_WIDTH", "32"], "MODEL.CUSTOM.TEXT_WIDTH"),
    (["MODEL.CUSTOM.WIDTH", "0"], "MODEL.CUSTOM.WIDTH"),
    (["MODEL.CUSTOM.PATCH_SIZE", "0"], "MODEL.CUSTOM.PATCH_SIZE must be at least 1"),
    (["MODEL.CUSTOM.LAYERS", "0"], "MODEL.CUSTOM.LAYERS"),
    (["MODEL.CUSTOM.PATCH_SIZE", "5"], "multiple of MODEL.CUSTOM.PATCH_SIZE 5"),
    (["DATA.DATASET", "ntu60", "DATA.BENCHMARK", "xset"], "does not exist for DATA.DATASET ntu60"),
    (["DATA.LAYOUT", "tape"], "DATA.LAYOUT"),
    (["DATA.PLANES_ON_DEVICE", "True"], "DATA.PLANES_ON_DEVICE was removed"),
])
def test_bad_overrides_are_one_line_user_errors(opts, needle):
    with pytest.raises(UserError) as info:
        load_config(None, opts)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = _write(tmp_path / "bad.yaml", "DATA: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    unknown = _write(tmp_path / "unknown.yaml", "TRAIN:\n  LRR: 1.0\n")
    with pytest.raises(ConfigError, match="unknown.yaml"):
        load_config(unknown)
    loop = _write(tmp_path / "loop.yaml", "BASE: ['loop.yaml']\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(loop)


def test_removed_key_in_a_file_says_what_replaced_it(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("DATA:\n  PLANES_ON_DEVICE: True\n")
    with pytest.raises(UserError, match=r"old.yaml: DATA.PLANES_ON_DEVICE was removed: the input encoder"):
        load_config(path)


def test_shipped_configs_load():
    root = Path(__file__).resolve().parent.parent / "configs"
    files = sorted(root.rglob("*.yaml"))
    assert files
    for path in files:
        load_config(path)


def test_synthetic_cache_dir_depends_on_generator_settings(tmp_path):
    a = synthetic_cache_dir(load_config(None, ["DATA.SYNTHETIC.CACHE", str(tmp_path)]))
    b = synthetic_cache_dir(load_config(None, ["DATA.SYNTHETIC.CACHE", str(tmp_path),
                                               "DATA.SYNTHETIC.SEED", "1"]))
    assert a.parent == b.parent == tmp_path and a != b
