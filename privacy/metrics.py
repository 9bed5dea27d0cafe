"""The attribute protocol of SPAct / STPrivacy / VISPR for fresh attackers: per-class average
precision (one value against the rest), its mean over an attribute's values and over every
(attribute, value) class (cMAP), macro-F1 of the attacker's top-1 choice, and their chance levels.

Chance levels: a class's AP under random scores is its prevalence p_c in the test videos; the F1
of a guesser that picks one of the attribute's C values uniformly at random is
``2 * p_c * (1/C) / (p_c + 1/C)`` (precision p_c, recall 1/C). Classes without a test video are
left out of every mean (their AP is undefined). All figures are percent.
"""
from __future__ import annotations

import torch

from privacy.attackers import group_slices, topk_accuracy

PERCENT = 100.0
TOP_K = (1, 5)


def average_precision(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Non-interpolated average precision (``sklearn.metrics.average_precision_score``): the sum
    over distinct score thresholds, highest first, of the recall gained times the precision there.

    Args:
        scores: [N] scores of one class.
        positive: [N] bool, the videos of that class.

    Returns:
        AP in [0, 1]; NaN without positives.
    """
    num_pos = int(positive.sum())
    if num_pos == 0:
        return float("nan")
    order = torch.argsort(scores, descending=True, stable=True)
    scores, positive = scores[order], positive[order].double()
    true_pos = torch.cumsum(positive, 0)
    seen = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    # the last index of every run of equal scores: ties count together at one threshold
    last = torch.ones(len(scores), dtype=torch.bool)
    last[:-1] = scores[1:] != scores[:-1]
    precision, recall = true_pos[last] / seen[last], true_pos[last] / num_pos
    gained = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.float64))
    return float((gained * precision).sum())


def f1_scores(predicted: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Per-class F1 [C] of hard predictions (NaN for classes without a test video)."""
    f1 = torch.full((classes,), float("nan"), dtype=torch.float64)
    for c in range(classes):
        actual, chosen = labels == c, predicted == c
        if actual.any():
            hits = int((actual & chosen).sum())
            f1[c] = 2 * hits / (int(actual.sum()) + int(chosen.sum()))
    return f1


def attribute_report(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float | int | None]:
    """One attribute's figures from the attacker's per-video probabilities.

    Args:
        probs: [N, C] probabilities of the attribute's C values.
        labels: [N] the true values.

    Returns:
        ``acc1``, ``acc1_chance`` (the most frequent value's share), ``ap`` (mean AP over the
        values present), ``ap_chance``, ``f1`` (macro-F1 over the values present), ``f1_chance``,
        ``classes``, ``videos``; and ``per_class_ap`` / ``per_class_f1`` / ``prevalence`` lists
        (None where a value has no test video), for :func:`attribute_summary`.
    """
    classes = probs.shape[1]
    ap = [average_precision(probs[:, c], labels == c) for c in range(classes)]
    f1 = f1_scores(probs.argmax(1), labels, classes).tolist()
    prevalence = torch.bincount(labels, minlength=classes)[:classes].double() / max(len(labels), 1)
    present = [c for c in range(classes) if prevalence[c] > 0]
    chance_f1 = [2 * float(prevalence[c]) / classes / (float(prevalence[c]) + 1 / classes) for c in present]

    def mean(values: list[float]) -> float | None:
        return PERCENT * sum(values) / len(values) if values else None

    return {
        "acc1": PERCENT * float((probs.argmax(1) == labels).double().mean()) if len(labels) else None,
        "acc1_chance": PERCENT * float(prevalence.max()) if len(labels) else None,
        "ap": mean([ap[c] for c in present]), "ap_chance": mean([float(prevalence[c]) for c in present]),
        "f1": mean([f1[c] for c in present]), "f1_chance": mean(chance_f1),
        "classes": classes, "videos": int(len(labels)),
        "per_class_ap": [ap[c] if c in present else None for c in range(classes)],
        "per_class_f1": [f1[c] if c in present else None for c in range(classes)],
        "prevalence": prevalence.tolist(),
    }


def attribute_summary(reports: dict[str, dict]) -> dict[str, float | None]:
    """cMAP and macro-F1 over every (attribute, value) class present, with their chance levels.

    Args:
        reports: attribute -> its :func:`attribute_report`.
    """
    ap, ap_chance, f1, f1_chance = [], [], [], []
    for report in reports.values():
        classes = report["classes"]
        for c in range(classes):
            if report["per_class_ap"][c] is None:
                continue
            p = report["prevalence"][c]
            ap.append(report["per_class_ap"][c])
            ap_chance.append(p)
            f1.append(report["per_class_f1"][c])
            f1_chance.append(2 * p / classes / (p + 1 / classes))

    def mean(values: list[float]) -> float | None:
        return PERCENT * sum(values) / len(values) if values else None

    return {"cmap": mean(ap), "cmap_chance": mean(ap_chance), "macro_f1": mean(f1),
            "macro_f1_chance": mean(f1_chance)}


def label_metrics(probs: torch.Tensor, y: torch.Tensor, label_of: dict[str, dict[int, int]]) -> dict:
    """privacy.json's figures of the attacker's test probabilities.

    Args:
        probs: [N, sum C] probabilities, one softmax per label (the order of ``label_of``).
        y: [N, G] compact classes.
        label_of: per label, value -> compact class.

    Returns:
        ``id_acc1``, ``id_acc5`` and ``chance`` when identity is learned; ``labels``: per label its
        :func:`~privacy.metrics.attribute_report`; ``cmap``, ``cmap_chance``, ``macro_f1``,
        ``macro_f1_chance`` over every (label, value) class.
    """
    groups = [len(compact) for compact in label_of.values()]
    reports, out = {}, {}
    for g, (head, part) in enumerate(zip(label_of, group_slices(groups))):
        reports[head] = attribute_report(probs[:, part], y[:, g])
        if head == "identity":
            out.update(id_acc1=topk_accuracy(probs[:, part], y[:, g], TOP_K[0]),
                       id_acc5=topk_accuracy(probs[:, part], y[:, g], TOP_K[1]), chance=PERCENT / groups[g])
    return {**out, "labels": reports, **attribute_summary(reports)}
