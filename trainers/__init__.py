"""Training and evaluation: the step and loop (``trainer``), the run wiring (``run``), losses,
optimizer and schedule, precision, checkpoints, distributed helpers. ``models/`` never imports
this package."""
from trainers.checkpoint import CheckpointSaver, find_latest_checkpoint, load_checkpoint, save_checkpoint
from trainers.distributed import DistInfo, cleanup_distributed, init_distributed
from trainers.evaluate import evaluate
from trainers.metrics import compute_metrics
from trainers.losses import PrivacyLoss
from trainers.optim import CosineWarmupScheduler, build_optimizer, build_param_groups
from trainers.precision import autocast_context, build_grad_scaler
from trainers.run import print_summary, run
from trainers.trainer import StepResult, Trainer

__all__ = [
    "CheckpointSaver", "CosineWarmupScheduler", "DistInfo", "PrivacyLoss", "StepResult", "Trainer",
    "autocast_context", "build_grad_scaler", "build_optimizer", "build_param_groups", "cleanup_distributed",
    "compute_metrics", "evaluate", "find_latest_checkpoint", "init_distributed", "load_checkpoint",
    "print_summary", "run", "save_checkpoint",
]
