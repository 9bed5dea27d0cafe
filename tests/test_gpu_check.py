"""tools/gpu_check.py without a GPU: argument handling, every part skipped with its reason, the
JSON and summary written; the loader measurement it runs, on CPU workers."""
from __future__ import annotations

import json

import pytest
import torch

from tools import gpu_check
from tools.bench.loader import loader_clips_per_s
from utils.config import load_config
from utils.errors import UserError


def test_unknown_parts_are_one_line_errors(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path), "--parts", "train,warp_drive"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "warp_drive" in err
    with pytest.raises(UserError):
        gpu_check.parse_args(["--out", str(tmp_path), "--parts", "nope"])
    assert gpu_check.parse_args(["--out", str(tmp_path)]).parts == list(gpu_check.PARTS)


def test_without_a_gpu_every_part_is_skipped_with_the_reason(tmp_path):
    results = gpu_check.run_parts(list(gpu_check.PARTS), tmp_path, cuda=False)
    assert results["gpu"] is None and list(results["parts"]) == list(gpu_check.PARTS)
    assert all(r == {"status": "skipped", "reason": gpu_check.NO_GPU} for r in results["parts"].values())
    assert "| demo | skipped | - |" in gpu_check.summary(results)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine main runs the whole check")
def test_main_writes_the_json_and_the_summary(tmp_path):
    assert gpu_check.main(["--out", str(tmp_path / "check"), "--parts", "cuda_tests,demo"]) == 0
    results = json.loads((tmp_path / "check" / "gpu_check.json").read_text())
    assert set(results["parts"]) == {"cuda_tests", "demo"}
    assert (tmp_path / "check" / "summary.md").read_text().startswith("# GPU check (no CUDA GPU")


def test_loader_measurement_counts_the_clips_it_loads(frames_root):
    cfg = load_config(None, ["DATA.ROOT", str(frames_root), "DATA.SYNTHETIC.ENABLED", "False", "DATA.NUM_CLASSES",
                             "3", "MODEL.PRIVACY_CLASSES", "[3]", "DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "16",
                             "DATA.FD_STRIDE", "2"])
    result = loader_clips_per_s(cfg, workers=1, batches=5, batch_size=2)
    assert result["clips"] == 10 and result["clips_per_s"] > 0
