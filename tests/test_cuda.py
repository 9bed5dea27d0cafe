"""The CUDA paths: attention backends, training steps at bf16 and fp16 (grad scaler), the input
encoders and the device crop, ``torch.compile``, and a one-process nccl run of the demo. Every test
is marked ``cuda`` and skipped with one reason where there is no GPU (the Triton kernel's own
CUDA comparisons are in tests/test_triton_attention.py, which runs on the GPU when there is one)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import models
from datasets.device import to_device
from datasets.items import ItemBuilder
from models.attention import BACKENDS, Attention
from models.bdq import BDQEncoder
from models.encoders import DownsampleEncoder, RGBEncoder
from models.ifns import IFNSEncoder, PlaneNorm
from trainers.distributed import DistInfo
from trainers.run import build_trainer
from utils.config import load_config

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

PROJECT = Path(__file__).resolve().parent.parent
CUDA = torch.device("cuda")
CLASSES = ["drink water", "eat meal", "brush teeth"]
TOLERANCE = {torch.float32: 2e-3, torch.bfloat16: 3e-2, torch.float16: 1e-2}
STEPS = 12  # training steps of the loss-falls checks


def _tiny_cfg(*opts: str):
    return load_config(None, ["MODEL.ARCH", "custom", "MODEL.PRETRAINED", "none", "MODEL.FREEZE", "[]",
                              "DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "32", "MODEL.PRIVACY_CLASSES", "[4]",
                              "DATA.FD_STRIDE", "2", "MODEL.CUSTOM.PATCH_SIZE", "8", "TRAIN.LR", "1e-3",
                              "TRAIN.WARMUP_EPOCHS", "0", "AUG.MIXUP", "0.0", "AUG.CUTMIX", "0.0", *opts])


def _batch(batch: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """A loader-like batch of IFNS windows (k = 2) whose action is a fixed pattern per class."""
    gen = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (batch, 4, 4, 1, 32, 32), dtype=torch.uint8, generator=gen)
    label = torch.arange(batch) % len(CLASSES)
    frames[:, :, :, :, :8, :8] = (label * 100).to(torch.uint8).view(-1, 1, 1, 1, 1, 1)  # learnable cue
    return {"frames": frames, "label": label, "identity": torch.arange(batch) % 4,
            "num_bad": torch.tensor(0)}


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "math"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("length, width", [(17, 128), (50, 160)])  # odd lengths; head dims 64 and 80
def test_attention_backends_equal_math_on_cuda(backend, dtype, length, width):
    torch.manual_seed(0)
    module = Attention(width, 2, backend="math").to(CUDA, dtype)
    x = torch.randn(3, length, width, device=CUDA, dtype=dtype, requires_grad=True)
    extra = torch.randn(3, 1, width, device=CUDA, dtype=dtype, requires_grad=True)
    outputs = []
    for name in ("math", backend):
        module.backend = name
        out = module(x, extra=extra)
        grads = torch.autograd.grad(out.float().square().sum(), (x, extra))
        outputs.append((out, grads))
    (ref, ref_grads), (out, grads) = outputs
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(out.float(), ref.float(), atol=tol, rtol=tol)
    for grad, ref_grad in zip(grads, ref_grads):
        torch.testing.assert_close(grad.float(), ref_grad.float(), atol=10 * tol, rtol=10 * tol)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_training_steps_on_cuda_learn_and_stay_finite(precision):
    cfg = _tiny_cfg("TRAIN.PRECISION", precision)
    torch.manual_seed(0)
    model = models.build_model(cfg, CLASSES).to(CUDA)
    trainer = build_trainer(cfg, DistInfo(device=CUDA), model, STEPS)
    assert (trainer.scaler is not None) == (precision == "fp16")
    batch = _batch()
    losses = [trainer.train_step([batch]).losses["action"] for _ in range(STEPS)]
    assert all(np.isfinite(losses)) and trainer.counters.nonfinite == 0
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


@pytest.mark.parametrize("encoder", [IFNSEncoder(2, PlaneNorm((0.1, 0.1, 0.3), (0.2, 0.2, 0.1))), RGBEncoder(),
                                     DownsampleEncoder(8), BDQEncoder()])
def test_input_encoders_on_cuda_equal_the_cpu(encoder):
    request = encoder.request
    frames = torch.randint(0, 256, (2, 3, len(request.offsets), request.channels, 32, 32), dtype=torch.uint8)
    expected = encoder(frames)
    torch.testing.assert_close(encoder.to(CUDA)(frames.to(CUDA)).cpu(), expected, atol=1e-4, rtol=1e-4)


def test_device_crop_on_cuda_equals_the_cpu():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(12, 40, 56), dtype=np.uint8)

    class Clip:
        num_frames = len(frames)

        def read_luma(self, ids):
            return frames[ids], (1.0, 0.0)

    builder = ItemBuilder(IFNSEncoder(2).request, 32, train=True, scales=(1.0, 0.875), flip=True,
                          color_jitter=1.0, crop_on_device=True)
    item = builder(Clip(), np.array([[3, 6, 9, 11]]), np.random.default_rng(1))
    batch = {key: torch.from_numpy(value)[None] for key, value in item.items()}
    batch["size"] = torch.tensor(32)
    on_cpu = to_device(batch, torch.device("cpu"))["frames"]
    on_cuda = to_device(batch, CUDA)["frames"].cpu()
    assert (on_cuda.int() - on_cpu.int()).abs().max() <= 1  # float rounding of the same resize


def test_compile_on_cuda_equals_eager():
    cfg = _tiny_cfg()
    torch.manual_seed(0)
    model = models.build_model(cfg, CLASSES).to(CUDA).eval()
    frames = _batch()["frames"].to(CUDA)
    with torch.no_grad():
        eager = model(frames)
        compiled = torch.compile(model)(frames)
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_one_process_nccl_run_of_the_demo(tmp_path):
    from conftest import moving_frames, tiny_names, write_frame_folder

    root = tmp_path / "frames"
    for i, name in enumerate(tiny_names()):
        write_frame_folder(root / name, moving_frames(i))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", f"--master_port={port}",
         str(PROJECT / "main.py"), "--output", str(out), "--opts", "DATA.ROOT", str(root),
         "DATA.SYNTHETIC.ENABLED", "False", "DATA.NUM_CLASSES", "3", "MODEL.PRIVACY_CLASSES", "[3]",
         "DATA.INPUT_SIZE", "16", "DATA.NUM_FRAMES", "4", "DATA.FD_STRIDE", "2", "TRAIN.BATCH_SIZE", "4",
         "TRAIN.EPOCHS", "1", "TRAIN.WARMUP_EPOCHS", "0", "MODEL.CUSTOM.PATCH_SIZE", "8"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(PROJECT)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "process group: nccl, rank 0 of 1" in (out / "log.txt").read_text()
    assert json.loads((out / "metrics.json").read_text())["num_videos"] == 9
