"""What the train, eval and data sections share: the benchmark's data config, the model, and real
collated batches of the shared pipeline (``datasets.build_datasets``)."""
from __future__ import annotations

import torch
from yacs.config import CfgNode

from datasets import DataSplits, build_datasets, collate_for
from datasets.dataset import ClipDataset
from models import build_model

SOURCE_TO_INPUT = 8 / 7  # synthetic frame side / input side for large inputs (256 px for 224)
SYNTHETIC_SMALL = {"NUM_ACTIONS": 4, "NUM_PERFORMERS": 2, "NUM_SETUPS": 2, "NUM_CAMERAS": 1,
                   "NUM_REPLICATIONS": 1}  # the small synthetic set made for large inputs


def bench_config(cfg: CfgNode, **overrides: object) -> CfgNode:
    """The config the benchmark reads its data with: for synthetic data and inputs larger than
    the synthetic frames, a small synthetic set at ``INPUT_SIZE * 8/7`` (256 px for 224); unreadable
    samples raise (``DATA.SKIP_BAD`` off).

    Args:
        cfg: the experiment config.
        overrides: ``DATA`` keys to set (``LAYOUT="packed"``, ...).
    """
    cfg = cfg.clone()
    cfg.defrost()
    syn = cfg.DATA.SYNTHETIC
    if not cfg.DATA.ROOT and syn.ENABLED and syn.SIZE < cfg.DATA.INPUT_SIZE:
        syn.SIZE = int(round(cfg.DATA.INPUT_SIZE * SOURCE_TO_INPUT))
        for key, value in SYNTHETIC_SMALL.items():
            syn[key] = value
    cfg.DATA.SKIP_BAD = False
    for key, value in overrides.items():
        cfg.DATA[key] = value
    cfg.freeze()
    return cfg


def make_model(cfg: CfgNode, splits: DataSplits, device: torch.device) -> torch.nn.Module:
    """The configured model on ``device`` (random init unless MODEL.PRETRAINED names a file).

    Args:
        cfg: the experiment config.
        splits: the datasets (their class names build the text prompts).
        device: the device of the run.
    """
    return build_model(cfg, splits.class_names).to(device)


def loader_batch(dataset: ClipDataset, batch_size: int, epoch: int = 0) -> dict[str, torch.Tensor]:
    """The batch a loader of ``dataset`` yields: items ``0 .. batch_size - 1`` (repeating the
    dataset when it is smaller) collated by :func:`datasets.collate_for`.

    Args:
        dataset: a dataset of :func:`datasets.build_datasets`.
        batch_size: clips B.
        epoch: the epoch of the training draws.
    """
    items = [dataset[(i % len(dataset), epoch)] for i in range(batch_size)]
    return collate_for(dataset)(items)


def load_splits(cfg: CfgNode) -> DataSplits:
    """The datasets of :func:`bench_config` of ``cfg`` (generated once when synthetic)."""
    return build_datasets(bench_config(cfg))
