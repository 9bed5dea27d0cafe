"""Measures training, evaluation, data loading and attention speed of a config, side by side.

Every figure comes from this one run on this one device: the run's training step
(:meth:`trainers.trainer.Trainer.train_step` built by :func:`trainers.run.build_trainer`, on a real
loader batch; median over ``--reps`` after ``--warmup``), its FLOPs counted by
``torch.utils.flop_counter``, the dense matmul peak of the same device and dtype (large square
matmuls), model FLOP utilisation (achieved / peak), memory, activation checkpointing on and off,
``torch.compile`` on and off, evaluation throughput of :func:`trainers.evaluate.predict`,
per-worker data-loading speed of every storage layout on the shared pipeline
(:func:`datasets.build_datasets` over video, frames, precomputed fd/avg JPEGs, packed at the
decoded and at the input size, the crop on the device) against a plain opencv JPEG read, and the
attention backends on the model's attention shapes.

Modules: :mod:`~tools.bench.train` (train step, checkpointing, compile), :mod:`~tools.bench.profile`
(``--profile``), :mod:`~tools.bench.evaluate`, :mod:`~tools.bench.data` and
:mod:`~tools.bench.layouts`, :mod:`~tools.bench.attention`, :mod:`~tools.bench.peak` (FLOPs,
matmul peak), :mod:`~tools.bench.timing` (timers, memory), :mod:`~tools.bench.report` (JSON,
summary), :mod:`~tools.bench.cli` (``main``).

Example::

    python tools/benchmark.py --what all --json bench_demo.json
    python -m tools.bench --what train --opts MODEL.ARCH ViT-B/16 DATA.INPUT_SIZE 224 \\
        TRAIN.PRECISION bf16 --batch-size 1 --reps 3 --json vitb16_bf16.json

Memory on CPU: ``peak_mem_bytes`` is the process peak RSS (``getrusage``); the per-step figures
(``act_bytes``: tensors alive when the model's forward returns, i.e. what autograd keeps for the
backward; ``step_peak_bytes``: the peak of tensors allocated during one step) are tracked
exactly by a dispatch mode that follows every tensor storage the step creates. On CUDA the same
figures come from the caching allocator's counters.
"""
from tools.bench.cli import main
from tools.bench.peak import count_flops
from tools.bench.timing import LiveTensorMemory

__all__ = ["LiveTensorMemory", "count_flops", "main"]
