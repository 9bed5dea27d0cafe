"""Accuracies of gathered predictions (one row per video): action top-1/top-5 and mean class
accuracy, each privacy head's closed-set top-1/top-5, all of them per camera, and the files
(``per_class_acc.csv``, the per-(class, camera) CSV and heat map)."""
from __future__ import annotations

import csv
import io
from typing import Any

import torch

from utils.misc import atomic_write, atomic_write_text

TOPK = 5  # the largest k of the top-k accuracies
PERCENT = 100.0
HEATMAP_INCHES_PER_ROW = 0.16  # heat-map height per class row
HEATMAP_WIDTH_INCHES = 4.0
HEATMAP_MIN_HEIGHT = 3.0
HEATMAP_DPI = 100

Predictions = dict[str, torch.Tensor]


def topk_accuracy(topk: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """Per-sample hit (bool [M]) of ``target`` among the first ``k`` columns of ``topk`` [M, >=k]."""
    return (topk[:, :k] == target[:, None]).any(dim=1)


def percent(hit: torch.Tensor) -> float | None:
    """Mean of the bool hits in percent; None without samples."""
    return float(hit.double().mean() * PERCENT) if hit.numel() else None


def per_class_accuracy(label: torch.Tensor, hit: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(top-1 accuracy per class [K] in percent, NaN without videos; videos per class [K])."""
    counts = torch.bincount(label, minlength=num_classes)[:num_classes]
    hits = torch.bincount(label, weights=hit.double(), minlength=num_classes)[:num_classes]
    return torch.where(counts > 0, hits / counts.clamp(min=1) * PERCENT, torch.tensor(float("nan"))), counts


def _action_metrics(label: torch.Tensor, topk: torch.Tensor, num_classes: int) -> dict[str, Any]:
    hit1 = topk_accuracy(topk, label, 1)
    per_class, counts = per_class_accuracy(label, hit1, num_classes)
    present = counts > 0
    return {"acc1": percent(hit1), "acc5": percent(topk_accuracy(topk, label, TOPK)),
            "mean_class_acc": float(per_class[present].mean()) if present.any() else None,
            "videos": int(label.numel())}


def _head_metrics(pred: Predictions, rows: torch.Tensor, heads: dict[str, set[int]]) -> dict[str, dict[str, Any]]:
    """Each head's top-1/top-5 over the ``rows`` whose label occurs in training (closed set)."""
    out = {}
    for name, known_labels in heads.items():
        label, topk = pred[name][rows], pred[f"{name}_topk"][rows]
        known = torch.isin(label, torch.tensor(sorted(known_labels), dtype=label.dtype))
        out[name] = {"acc1": percent(topk_accuracy(topk[known], label[known], 1)),
                     "acc5": percent(topk_accuracy(topk[known], label[known], TOPK)),
                     "videos": int(known.sum())}
    return out


def compute_metrics(pred: Predictions, *, num_classes: int, train_labels: dict[str, set[int]]
                    ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Accuracies in percent from gathered predictions (one row per video).

    A privacy head's accuracy counts only the videos whose label of that head occurs in training
    (its ``videos``); it is None when there is none. ``id_acc1`` / ``id_acc5`` / ``id_videos``
    repeat the identity head's figures (None and 0 without an identity head).

    Args:
        pred: ``label``, ``camera`` [M], ``action_topk`` [M, k], and per head ``<head>`` [M] and
            ``<head>_topk`` [M, k] (class ids best first), ``num_views``.
        num_classes: K.
        train_labels: privacy head -> its labels present in the training split.

    Returns:
        The metrics dict (with ``heads`` and ``per_camera`` objects), per-class accuracy [K]
        (NaN for classes without videos) and per-class counts [K].
    """
    label, camera = pred["label"], pred["camera"]
    everything = torch.ones_like(label, dtype=torch.bool)
    action = _action_metrics(label, pred["action_topk"], num_classes)
    heads = _head_metrics(pred, everything, train_labels)
    per_camera = {}
    for cam in torch.unique(camera).tolist():
        rows = camera == cam
        per_camera[str(cam)] = {**_action_metrics(label[rows], pred["action_topk"][rows], num_classes),
                                "heads": _head_metrics(pred, rows, train_labels)}
    identity = heads.get("identity", {"acc1": None, "acc5": None, "videos": 0})
    metrics = {
        "acc1": action["acc1"], "acc5": action["acc5"], "mean_class_acc": action["mean_class_acc"],
        "id_acc1": identity["acc1"], "id_acc5": identity["acc5"], "id_videos": identity["videos"],
        "heads": heads, "per_camera": per_camera,
        "num_videos": action["videos"], "num_views": int(pred["num_views"]),
    }
    per_class, counts = per_class_accuracy(label, topk_accuracy(pred["action_topk"], label, 1), num_classes)
    return metrics, per_class, counts


def _class_name(class_names: list[str] | None, k: int) -> str:
    return class_names[k] if class_names and k < len(class_names) else str(k)


def _fmt_acc(value: torch.Tensor) -> str:
    return "" if torch.isnan(value) else f"{float(value):.2f}"


def write_per_class(path: str, per_class: torch.Tensor, counts: torch.Tensor, class_names: list[str] | None) -> None:
    """``class_id, class_name, videos, acc1`` per action class (acc1 empty without videos)."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["class_id", "class_name", "videos", "acc1"])
    writer.writerows([k, _class_name(class_names, k), int(counts[k]), _fmt_acc(per_class[k])]
                     for k in range(per_class.numel()))
    atomic_write_text(path, text.getvalue())


def class_camera_table(pred: Predictions, num_classes: int) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """(cameras, top-1 accuracy [K, R] in percent with NaN where a class has no video of the
    camera, videos [K, R])."""
    label, camera = pred["label"], pred["camera"]
    hit = topk_accuracy(pred["action_topk"], label, 1)
    cameras = torch.unique(camera).tolist()
    columns = [per_class_accuracy(label[camera == cam], hit[camera == cam], num_classes) for cam in cameras]
    if not columns:
        return [], torch.zeros(num_classes, 0), torch.zeros(num_classes, 0, dtype=torch.long)
    return cameras, torch.stack([c[0] for c in columns], 1), torch.stack([c[1] for c in columns], 1)


def write_class_camera(csv_path: str, png_path: str | None, pred: Predictions, num_classes: int,
                       class_names: list[str] | None) -> None:
    """The per-(class, camera) action top-1 as a CSV (``class_id, class_name, camera, videos,
    acc1``, one row per pair) and, with ``png_path``, a heat map (classes x cameras; blank where
    a class has no video of a camera)."""
    cameras, acc, counts = class_camera_table(pred, num_classes)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["class_id", "class_name", "camera", "videos", "acc1"])
    for k in range(num_classes):
        for j, cam in enumerate(cameras):
            writer.writerow([k, _class_name(class_names, k), cam, int(counts[k, j]), _fmt_acc(acc[k, j])])
    atomic_write_text(csv_path, text.getvalue())
    if png_path and cameras:
        _write_heatmap(png_path, acc, cameras, [_class_name(class_names, k) for k in range(num_classes)])


def _write_heatmap(path: str, acc: torch.Tensor, cameras: list[int], row_names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the headless backend

    height = max(HEATMAP_MIN_HEIGHT, HEATMAP_INCHES_PER_ROW * len(row_names))
    fig, ax = plt.subplots(figsize=(HEATMAP_WIDTH_INCHES, height))
    image = ax.imshow(acc.numpy(), aspect="auto", cmap="viridis", vmin=0.0, vmax=PERCENT)
    ax.set_xticks(range(len(cameras)), [f"camera {c}" for c in cameras])
    ax.set_yticks(range(len(row_names)), row_names, fontsize=6)
    ax.set_title("action top-1 (%) per class and camera", fontsize=8)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=HEATMAP_DPI), binary=True)
    plt.close(fig)
