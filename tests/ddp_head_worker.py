"""Run by tests/test_distributed.py under torchrun (gloo, CPU): each rank trains the fake model
with the adversarial alternation on its shard of the same global batches and saves its weights.

    torchrun --nproc_per_node=2 tests/ddp_head_worker.py OUT_DIR
"""
from __future__ import annotations

import os
import sys

import torch
from torch.nn.parallel import DistributedDataParallel

from fakes import FakeModel, make_batches, make_trainer
from trainers.distributed import cleanup_distributed, init_distributed

GLOBAL_BATCH, STEPS, HEAD_STEPS, SEED = 4, 3, 2, 0


def train(rank: int, world_size: int, wrap: bool) -> torch.nn.Module:
    """The fake model after ``STEPS`` adversarial steps on this rank's shard of each global batch.

    Args:
        rank: this rank.
        world_size: number of ranks (1 = the whole batch in one process).
        wrap: DDP-wrap the model (a process group must exist).
    """
    torch.manual_seed(SEED)
    model = FakeModel()
    trainer = make_trainer(model, accumulation=1, steps=STEPS, mode="adversarial", head_steps=HEAD_STEPS,
                           world_size=world_size)
    trainer.scheduler.step()  # past the warmup's zero LR
    if wrap:
        trainer.model = DistributedDataParallel(model)
    share = GLOBAL_BATCH // world_size
    for batch in make_batches(STEPS, GLOBAL_BATCH):
        trainer.train_step([{k: v[rank * share:(rank + 1) * share] for k, v in batch.items()}])
    return model


def main(out_dir: str) -> None:
    """Trains on every rank and writes ``rank{r}.pt`` (the model's state dict) into ``out_dir``."""
    info = init_distributed(use_cuda=False)
    try:
        model = train(info.rank, info.world_size, wrap=info.distributed)
        torch.save(model.state_dict(), os.path.join(out_dir, f"rank{info.rank}.pt"))
    finally:
        cleanup_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
