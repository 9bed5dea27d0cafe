"""The prepared GPU check: on one GPU, in a few minutes, everything a user's GPU run depends on.

Usage: python tools/gpu_check.py --out DIR [--parts cuda_tests,train,attention,loader,demo]

Parts (each a subprocess with its own time limit, so one failure does not stop the others):

- ``cuda_tests``: ``pytest -m cuda`` (tests/test_cuda.py) and the Triton kernel's comparisons on
  the GPU (tests/test_triton_attention.py).
- ``train``: the benchmark's train and eval sections (``Trainer.train_step`` and
  ``evaluate.predict``) for ViT-B/16 and ViT-B/32 at bf16: step time, clips/s, MFU against the
  dense bf16 matmul peak measured in the same run, peak memory.
- ``attention``: sdpa against the Triton kernel on ViT-B/16's attention shapes.
- ``loader``: clips/s of a loader with 8 workers over a packed store (the benchmark's synthetic
  clips at 224 px), against the ViT-B/16 step's clips/s.
- ``demo``: ``python main.py`` end to end (action top-1, wall time).

Writes ``DIR/gpu_check.json`` (every part's status, seconds and figures) and ``DIR/summary.md``.
Without a GPU every part is recorded as skipped with the reason.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from utils.errors import USER_ERROR_EXIT_CODE, UserError
from utils.misc import atomic_write_text

logger = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parent.parent
PART_LIMIT_S = {"cuda_tests": 150, "train": 180, "attention": 60, "loader": 90, "demo": 120}
PARTS = tuple(PART_LIMIT_S)
ARCHS = ("ViT-B/16", "ViT-B/32")
LOADER_WORKERS = 8
LOADER_BATCHES = 40
TAIL_CHARS = 2000  # characters of a failed part's output kept in the JSON
NO_GPU = "no CUDA GPU on this machine"


def _run(cmd: list[str], limit_s: int, out: Path, name: str) -> tuple[int, str]:
    """Runs ``cmd`` in the project with a time limit, its output into ``out/name.log``; returns
    (exit status, output tail)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    try:
        done = subprocess.run(cmd, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=limit_s)
    except subprocess.TimeoutExpired as exc:
        return -1, f"timed out after {limit_s} s: {(exc.stdout or '')[-TAIL_CHARS:]}"
    (out / f"{name}.log").write_text(done.stdout + done.stderr)
    return done.returncode, (done.stdout + done.stderr)[-TAIL_CHARS:]


def part_cuda_tests(out: Path, limit_s: int) -> dict[str, Any]:
    """The CUDA tests and the Triton kernel on the GPU."""
    status, tail = _run([sys.executable, "-m", "pytest", "-q", "tests/test_cuda.py", "tests/test_triton_attention.py"],
                        limit_s, out, "cuda_tests")
    return {"ok": status == 0, "summary": tail.strip().splitlines()[-1] if tail.strip() else ""}


def _bench(out: Path, limit_s: int, name: str, what: str, opts: list[str]) -> dict[str, Any]:
    path = out / f"{name}.json"
    status, tail = _run([sys.executable, "tools/benchmark.py", "--what", what, "--reps", "5", "--warmup", "2",
                         "--batch-size", "8", "--json", str(path), "--opts", *opts], limit_s, out, name)
    if status != 0 or not path.is_file():
        return {"ok": False, "tail": tail}
    return {"ok": True, **json.loads(path.read_text())}


def part_train(out: Path, limit_s: int) -> dict[str, Any]:
    """Train and eval steps of ViT-B/16 and ViT-B/32 at bf16."""
    result: dict[str, Any] = {"ok": True}
    for arch in ARCHS:
        key = arch.replace("/", "").lower()
        for what in ("train", "eval"):
            figures = _bench(out, limit_s // (2 * len(ARCHS)), f"{key}_{what}", what,
                             ["MODEL.ARCH", arch, "DATA.INPUT_SIZE", "224", "TRAIN.PRECISION", "bf16"])
            result[f"{key}_{what}"] = figures.get(what, figures)
            result["ok"] &= figures["ok"]
    return result


def part_attention(out: Path, limit_s: int) -> dict[str, Any]:
    """sdpa against the Triton kernel on the real attention shapes."""
    figures = _bench(out, limit_s, "attention", "attention",
                     ["MODEL.ARCH", "ViT-B/16", "DATA.INPUT_SIZE", "224", "TRAIN.PRECISION", "bf16"])
    return {"ok": figures["ok"], **figures.get("attention", {})}


def part_loader(out: Path, limit_s: int) -> dict[str, Any]:
    """Loader clips/s with 8 workers on a packed store, against the step's clips/s."""
    status, tail = _run([sys.executable, "-m", "tools.bench.loader", "--workers", str(LOADER_WORKERS),
                         "--batches", str(LOADER_BATCHES), "--json", str(out / "loader.json")], limit_s, out,
                        "loader")
    if status != 0:
        return {"ok": False, "tail": tail}
    loader = json.loads((out / "loader.json").read_text())
    step = json.loads((out / "vitb16_train.json").read_text())["train"] if (out / "vitb16_train.json").is_file() else {}
    ratio = loader["clips_per_s"] / step["clips_per_s"] if step.get("clips_per_s") else None
    return {"ok": True, **loader, "step_clips_per_s": step.get("clips_per_s"), "loader_over_step": ratio}


def part_demo(out: Path, limit_s: int) -> dict[str, Any]:
    """``python main.py`` end to end."""
    start = time.time()
    status, tail = _run([sys.executable, "main.py", "--output", str(out / "demo")], limit_s, out, "demo")
    metrics_file = out / "demo" / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return {"ok": status == 0, "acc1": metrics.get("acc1"), "wall_s": round(time.time() - start, 1),
            **({} if status == 0 else {"tail": tail})}


PART_FUNCTIONS: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "cuda_tests": part_cuda_tests, "train": part_train, "attention": part_attention, "loader": part_loader,
    "demo": part_demo}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``argv`` None = ``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder of gpu_check.json and summary.md")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    args = parser.parse_args(argv)
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        raise UserError(f"--parts {', '.join(unknown)} unknown; choose from {', '.join(PARTS)}")
    return args


def run_parts(parts: list[str], out: Path, cuda: bool) -> dict[str, Any]:
    """Runs ``parts`` in order (skipped, with the reason, without a GPU)."""
    results: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0) if cuda else None,
                               "torch": torch.__version__, "parts": {}}
    for part in parts:
        start = time.time()
        if not cuda:
            results["parts"][part] = {"status": "skipped", "reason": NO_GPU}
            continue
        logger.info("gpu check: %s (at most %d s)", part, PART_LIMIT_S[part])
        figures = PART_FUNCTIONS[part](out, PART_LIMIT_S[part])
        results["parts"][part] = {"status": "passed" if figures.pop("ok") else "failed",
                                  "seconds": round(time.time() - start, 1), **figures}
    return results


def summary(results: dict[str, Any]) -> str:
    """A short markdown summary of :func:`run_parts`' results."""
    lines = [f"# GPU check ({results['gpu'] or NO_GPU}, torch {results['torch']})", "",
             "| part | status | seconds |", "|---|---|---|"]
    for part, result in results["parts"].items():
        lines.append(f"| {part} | {result['status']} | {result.get('seconds', '-')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Runs the check; returns 0 when every part ran passed or skipped, 1 on a failed part."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        args = parse_args(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    args.out.mkdir(parents=True, exist_ok=True)
    results = run_parts(args.parts, args.out, torch.cuda.is_available())
    atomic_write_text(args.out / "gpu_check.json", json.dumps(results, indent=1) + "\n")
    atomic_write_text(args.out / "summary.md", summary(results))
    print(summary(results))
    return int(any(r["status"] == "failed" for r in results["parts"].values()))


if __name__ == "__main__":
    sys.exit(main())
