"""Multi-view evaluation: softmax averaged over the views of each video, results gathered across
ranks so that every video counts exactly once, then the accuracies of :mod:`trainers.metrics`
and the metrics files."""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Iterable

import torch
from torch import nn

from datasets.device import to_device
from trainers.distributed import DistInfo, all_gather_objects
from trainers.metrics import TOPK, compute_metrics, write_class_camera, write_per_class
from trainers.precision import autocast_context
from utils.misc import atomic_write_text

logger = logging.getLogger(__name__)

METRICS_NAME = "metrics.json"
PER_CLASS_NAME = "per_class_acc.csv"
CLASS_CAMERA_NAME = "per_class_camera_acc.csv"
CLASS_CAMERA_PLOT = "per_class_camera_acc.png"
TEST_ONLY_PREFIX = "test_"  # a test-only run's files (test_metrics.json ...) beside the training run's
ROW_KEYS = ("index", "label", "camera")  # per-video integers every prediction keeps


def _topk(logits: torch.Tensor, batch_size: int, num_views: int) -> torch.Tensor:
    """Logits [B*V, C] -> class ids [B, min(k, C)] of the view-averaged softmax, best first."""
    prob = logits.float().softmax(-1).view(batch_size, num_views, -1).mean(1)  # [B, C]
    return prob.topk(min(TOPK, prob.shape[1]), dim=1).indices.cpu()


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable[dict[str, torch.Tensor]], device: torch.device,
            precision: str) -> dict[str, torch.Tensor]:
    """Runs the model over this rank's share of the validation set.

    Args:
        model: returns (action logits [N, K], privacy logits {head: [N, C_h]}) for frames
            [N, T, F, C, H, W].
        loader: batches with ``frames`` [B, V, T, F, C, H, W] (or uncropped frames for
            :func:`~datasets.device.to_device`), ``label``, ``camera``, ``index`` and one label
            per privacy head [B].
        device: compute device.
        precision: autocast precision.

    Returns:
        CPU tensors: ``index``, ``label``, ``camera`` [M], ``action_topk`` [M, k], per head
        ``<head>`` [M] and ``<head>_topk`` [M, k] (class ids of the view-averaged probabilities,
        best first), ``num_views``.
    """
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    num_views = 0
    for batch in loader:
        frames = to_device(batch, device)["frames"]  # [B, V, T, F, C, H, W]
        batch_size, num_views = frames.shape[:2]
        with autocast_context(precision, device):
            action_logits, privacy_logits = model(frames.flatten(0, 1))  # [B*V, K], {head: [B*V, C_h]}
        rows = {"action_topk": _topk(action_logits, batch_size, num_views)}
        for name, logits in privacy_logits.items():
            rows[f"{name}_topk"] = _topk(logits, batch_size, num_views)
            rows[name] = batch[name].reshape(-1).cpu()
        rows.update({key: batch[key].reshape(-1).cpu() for key in ROW_KEYS})
        for key, value in rows.items():
            parts.setdefault(key, []).append(value)
    out = {k: torch.cat(v) for k, v in parts.items()}
    out["num_views"] = torch.tensor(num_views)
    return out


def _gather(local: dict[str, torch.Tensor], info: DistInfo) -> dict[str, torch.Tensor]:
    """Concatenates every rank's predictions and keeps one row per video index."""
    shards = all_gather_objects(local, info)
    keys = sorted({k for s in shards for k in s if k != "num_views"})
    merged = {k: torch.cat([s[k] for s in shards if k in s and s[k].numel()] or [torch.zeros(0, dtype=torch.long)])
              for k in keys}
    merged["num_views"] = torch.tensor(max(int(s["num_views"]) for s in shards))
    if "index" not in merged:  # no rank had a video
        merged.update({key: torch.zeros(0, dtype=torch.long) for key in ROW_KEYS + ("action_topk",)})
    _, first = _first_occurrence(merged["index"])
    return {k: (v[first] if k != "num_views" else v) for k, v in merged.items()}


def _first_occurrence(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique values of ``index`` and the position of the first row holding each."""
    unique, inverse = torch.unique(index, return_inverse=True)
    positions = torch.arange(index.numel())
    first = torch.full((unique.numel(),), index.numel(), dtype=torch.long).scatter_reduce(
        0, inverse, positions, reduce="amin")
    return unique, first


def evaluate(model: nn.Module, loader: Iterable[dict[str, torch.Tensor]], *, info: DistInfo,
             precision: str, num_classes: int, train_labels: dict[str, set[int]], epoch: int,
             class_names: list[str] | None = None, output_dir: str | None = None,
             file_prefix: str = "", plot: bool = True) -> dict[str, Any]:
    """Evaluates on every rank's share, gathers, and (rank 0, with ``output_dir``) writes
    ``metrics.json``, ``per_class_acc.csv``, ``per_class_camera_acc.csv`` and its heat map
    ``per_class_camera_acc.png``.

    Args:
        model: the model (DDP-wrapped or not).
        loader: this rank's validation loader (each video on exactly one rank).
        info: distributed info.
        precision: autocast precision.
        num_classes: K.
        train_labels: privacy head -> its labels present in the training split.
        epoch: completed training epochs (stored in the metrics).
        class_names: names for the CSV.
        output_dir: where rank 0 writes the files; ``None`` writes nothing.
        file_prefix: put before the file names (a test-only run's :data:`TEST_ONLY_PREFIX`).
        plot: also draw the heat map.

    Returns:
        The metrics (identical on every rank).
    """
    pred = _gather(predict(model, loader, info.device, precision), info)
    metrics, per_class, counts = compute_metrics(pred, num_classes=num_classes, train_labels=train_labels)
    metrics["epoch"] = epoch
    if output_dir and info.is_main:
        def path(name: str) -> str:
            return os.path.join(output_dir, file_prefix + name)

        atomic_write_text(path(METRICS_NAME), json.dumps(metrics, indent=2) + "\n")
        write_per_class(path(PER_CLASS_NAME), per_class, counts, class_names)
        write_class_camera(path(CLASS_CAMERA_NAME), path(CLASS_CAMERA_PLOT) if plot else None, pred,
                           num_classes, class_names)
    return metrics


def format_metrics(metrics: dict[str, Any]) -> str:
    """One log line of the main metrics."""
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    heads = "  ".join(f"{name} acc1 {fmt(head['acc1'])} ({head['videos']} videos)"
                      for name, head in metrics["heads"].items())
    return (f"acc1 {fmt(metrics['acc1'])}  acc5 {fmt(metrics['acc5'])}  mean class {fmt(metrics['mean_class_acc'])}  "
            f"{heads}  ({metrics['num_videos']} videos, {metrics['num_views']} views)")
