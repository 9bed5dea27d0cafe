"""The pre-redesign trainer's real step (Trainer.train_one_epoch over one batch = one optimizer step),
ViT-B/16 at 224 px, batch 1, built as the old trainers.trainer.run builds it; run in /work/wt-old."""
import json, statistics, sys, time
import numpy as np
import torch
from tools.benchmark import make_model
from trainers.trainer import Trainer, _build_head_optimizer
from trainers.optim import build_optimizer, CosineWarmupScheduler
from trainers.losses import PrivacyLoss
from trainers.precision import build_grad_scaler
from datasets.mixup import build_mixup
from datasets.loader import build_device_planes
from utils.allocator import keep_freed_memory
from utils.config import load_config

prec, out = sys.argv[1], sys.argv[2]
cfg = load_config(None, ["MODEL.ARCH", "ViT-B/16", "DATA.INPUT_SIZE", "224", "TRAIN.PRECISION", prec])
keep_freed_memory()
torch.manual_seed(cfg.SEED)
device = torch.device("cpu")
model = make_model(cfg, device).train()
optimizer = build_optimizer(model, lr=cfg.TRAIN.LR, new_module_lr_mult=cfg.TRAIN.NEW_MODULE_LR_MULT,
                            weight_decay=cfg.TRAIN.WEIGHT_DECAY, betas=tuple(cfg.TRAIN.BETAS), eps=cfg.TRAIN.EPS)
scheduler = CosineWarmupScheduler(optimizer, total_steps=1000, warmup_steps=100, min_lr_ratio=cfg.TRAIN.MIN_LR_RATIO,
                                  warmup_lr_ratio=cfg.TRAIN.WARMUP_LR_RATIO)
loss_fn = PrivacyLoss(mode=cfg.TRAIN.PRIVACY_LOSS, weight=cfg.TRAIN.PRIVACY_WEIGHT, label_smoothing=cfg.AUG.LABEL_SMOOTH)
dp = build_device_planes(cfg)
trainer = Trainer(model=model, optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn, device=device,
                  precision=cfg.TRAIN.PRECISION, scaler=build_grad_scaler(cfg.TRAIN.PRECISION, device),
                  mixup=build_mixup(cfg, np.random.default_rng([cfg.SEED, 0])), accumulation_steps=1,
                  clip_grad=cfg.TRAIN.CLIP_GRAD, max_nonfinite=cfg.TRAIN.MAX_NONFINITE,
                  head_optimizer=_build_head_optimizer(cfg, model), head_steps=cfg.TRAIN.ADV_STEPS - 1,
                  world_size=1, print_freq=10 ** 9, device_planes=dp)
g = torch.Generator().manual_seed(cfg.SEED)
batch = {"clips": torch.randn(1, cfg.DATA.NUM_FRAMES, 3, 224, 224, generator=g),
         "label": torch.randint(cfg.DATA.NUM_CLASSES, (1,), generator=g),
         "identity": torch.randint(cfg.DATA.NUM_IDENTITIES, (1,), generator=g)}
print("device_planes", dp is not None, "mixup", trainer.mixup is not None, "clip", cfg.TRAIN.CLIP_GRAD)
times = []
for r in range(6):
    t = time.perf_counter(); trainer.train_one_epoch([batch], 0, 1); times.append(time.perf_counter() - t)
times = times[1:]
print("old real step", [round(x, 3) for x in times], "median", round(statistics.median(times), 3))
json.dump({"step_s": statistics.median(times), "times": times}, open(out, "w"))
