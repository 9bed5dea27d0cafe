"""Multi-view evaluation: softmax averaged over the views of each video, results gathered across
ranks so that every video counts exactly once, action and identity accuracies, metrics files."""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from typing import Any, Iterable

import torch
from torch import nn

from datasets.device import to_device
from trainers.distributed import DistInfo, all_gather_objects
from trainers.precision import autocast_context
from utils.misc import atomic_write_text

logger = logging.getLogger(__name__)

TOPK = 5  # the largest k of the top-k accuracies
PERCENT = 100.0
METRICS_NAME = "metrics.json"
PER_CLASS_NAME = "per_class_acc.csv"
TEST_ONLY_PREFIX = "test_"  # a test-only run's files (test_metrics.json ...) beside the training run's


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable[dict[str, torch.Tensor]], device: torch.device,
            precision: str) -> dict[str, torch.Tensor]:
    """Runs the model over this rank's share of the validation set.

    Args:
        model: returns (action logits [N, K], identity logits [N, P]) for frames [N, T, F, C, H, W].
        loader: batches with ``frames`` [B, V, T, F, C, H, W] (or uncropped frames for
            :func:`~datasets.device.to_device`), ``label``, ``identity`` and ``index`` [B].
        device: compute device.
        precision: autocast precision.

    Returns:
        CPU tensors: ``index``, ``label``, ``identity`` [M], ``action_topk`` and ``identity_topk``
        [M, k] (class ids of the view-averaged probabilities, best first), ``num_views``.
    """
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("index", "label", "identity", "action_topk",
                                                             "identity_topk")}
    num_views = 0
    for batch in loader:
        frames = to_device(batch, device)["frames"]  # [B, V, T, F, C, H, W]
        batch_size, num_views = frames.shape[:2]
        with autocast_context(precision, device):
            action_logits, identity_logits = model(frames.flatten(0, 1))  # [B*V, K], [B*V, P]
        action_prob = action_logits.float().softmax(-1).view(batch_size, num_views, -1).mean(1)  # [B, K]
        identity_prob = identity_logits.float().softmax(-1).view(batch_size, num_views, -1).mean(1)  # [B, P]
        parts["action_topk"].append(action_prob.topk(min(TOPK, action_prob.shape[1]), dim=1).indices.cpu())
        parts["identity_topk"].append(identity_prob.topk(min(TOPK, identity_prob.shape[1]), dim=1).indices.cpu())
        for key in ("index", "label", "identity"):
            parts[key].append(batch[key].reshape(-1).cpu())
    out = {k: torch.cat(v) if v else torch.zeros(0, dtype=torch.long) for k, v in parts.items()}
    out["num_views"] = torch.tensor(num_views)
    return out


def _gather(local: dict[str, torch.Tensor], info: DistInfo) -> dict[str, torch.Tensor]:
    """Concatenates every rank's predictions and keeps one row per video index."""
    shards = all_gather_objects(local, info)
    merged = {k: torch.cat([s[k] for s in shards if s[k].numel()]) if any(s[k].numel() for s in shards)
              else local[k] for k in ("index", "label", "identity", "action_topk", "identity_topk")}
    merged["num_views"] = torch.tensor(max(int(s["num_views"]) for s in shards))
    _, first = _first_occurrence(merged["index"])
    return {k: (v[first] if k != "num_views" else v) for k, v in merged.items()}


def _first_occurrence(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique values of ``index`` and the position of the first row holding each."""
    unique, inverse = torch.unique(index, return_inverse=True)
    positions = torch.arange(index.numel())
    first = torch.full((unique.numel(),), index.numel(), dtype=torch.long).scatter_reduce(
        0, inverse, positions, reduce="amin")
    return unique, first


def topk_accuracy(topk: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """Per-sample hit (bool [M]) of ``target`` among the first ``k`` columns of ``topk`` [M, >=k]."""
    return (topk[:, :k] == target[:, None]).any(dim=1)


def compute_metrics(pred: dict[str, torch.Tensor], *, num_classes: int,
                    train_identities: set[int]) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Accuracies in percent from gathered predictions (one row per video).

    Identity accuracy counts only the videos whose identity occurs in training (``id_videos``);
    it is ``None`` when there is none.

    Returns:
        The metrics dict, per-class accuracy [K] (NaN for classes without videos) and per-class counts [K].
    """
    label, identity = pred["label"], pred["identity"]
    num_videos = int(label.numel())
    hit1 = topk_accuracy(pred["action_topk"], label, 1)
    hit5 = topk_accuracy(pred["action_topk"], label, TOPK)
    counts = torch.bincount(label, minlength=num_classes)[:num_classes]
    hits = torch.bincount(label, weights=hit1.double(), minlength=num_classes)[:num_classes]
    per_class = torch.where(counts > 0, hits / counts.clamp(min=1) * PERCENT, torch.tensor(float("nan")))
    present = counts > 0
    known = torch.isin(identity, torch.tensor(sorted(train_identities), dtype=identity.dtype))
    id_videos = int(known.sum())

    def pct(hit: torch.Tensor) -> float | None:
        return float(hit.double().mean() * PERCENT) if hit.numel() else None

    metrics = {
        "acc1": pct(hit1), "acc5": pct(hit5),
        "mean_class_acc": float(per_class[present].mean()) if present.any() else None,
        "id_acc1": pct(topk_accuracy(pred["identity_topk"][known], identity[known], 1)),
        "id_acc5": pct(topk_accuracy(pred["identity_topk"][known], identity[known], TOPK)),
        "id_videos": id_videos,
        "num_videos": num_videos,
        "num_views": int(pred["num_views"]),
    }
    return metrics, per_class, counts


def evaluate(model: nn.Module, loader: Iterable[dict[str, torch.Tensor]], *, info: DistInfo,
             precision: str, num_classes: int, train_identities: set[int], epoch: int,
             class_names: list[str] | None = None, output_dir: str | None = None,
             file_prefix: str = "") -> dict[str, Any]:
    """Evaluates on every rank's share, gathers, and (rank 0, with ``output_dir``) writes
    ``metrics.json`` and ``per_class_acc.csv``.

    Args:
        model: the model (DDP-wrapped or not).
        loader: this rank's validation loader (each video on exactly one rank).
        info: distributed info.
        precision: autocast precision.
        num_classes: K.
        train_identities: identities present in the training split.
        epoch: completed training epochs (stored in the metrics).
        class_names: names for the CSV.
        output_dir: where rank 0 writes the files; ``None`` writes nothing.
        file_prefix: put before the file names (a test-only run's :data:`TEST_ONLY_PREFIX`).

    Returns:
        The metrics (identical on every rank).
    """
    pred = _gather(predict(model, loader, info.device, precision), info)
    metrics, per_class, counts = compute_metrics(pred, num_classes=num_classes, train_identities=train_identities)
    metrics["epoch"] = epoch
    if output_dir and info.is_main:
        atomic_write_text(os.path.join(output_dir, file_prefix + METRICS_NAME), json.dumps(metrics, indent=2) + "\n")
        _write_per_class(os.path.join(output_dir, file_prefix + PER_CLASS_NAME), per_class, counts, class_names)
    return metrics


def _write_per_class(path: str, per_class: torch.Tensor, counts: torch.Tensor, class_names: list[str] | None) -> None:
    rows = []
    for k in range(per_class.numel()):
        name = class_names[k] if class_names and k < len(class_names) else str(k)
        acc = "" if torch.isnan(per_class[k]) else f"{float(per_class[k]):.2f}"
        rows.append([k, name, int(counts[k]), acc])
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["class_id", "class_name", "videos", "acc1"])
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def format_metrics(metrics: dict[str, Any]) -> str:
    """One log line of the main metrics."""
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    return (f"acc1 {fmt(metrics['acc1'])}  acc5 {fmt(metrics['acc5'])}  mean class {fmt(metrics['mean_class_acc'])}  "
            f"id acc1 {fmt(metrics['id_acc1'])}  id acc5 {fmt(metrics['id_acc5'])} "
            f"(over {metrics['id_videos']} of {metrics['num_videos']} videos, {metrics['num_views']} views)")
