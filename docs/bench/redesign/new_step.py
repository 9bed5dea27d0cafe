"""The new Trainer.train_step, ViT-B/16 224 px batch 1 (as tools/bench/train builds it)."""
import json, statistics, sys, time
import torch
from tools.bench.cli import load_splits
from tools.bench.train import build_step
from utils.allocator import keep_freed_memory
from utils.config import load_config
prec, out = sys.argv[1], sys.argv[2]
cfg = load_config(None, ["MODEL.ARCH", "ViT-B/16", "DATA.INPUT_SIZE", "224", "TRAIN.PRECISION", prec])
keep_freed_memory()
torch.manual_seed(cfg.SEED)
step = build_step(cfg, load_splits(cfg), torch.device("cpu"), 1)
print("mixup", step.trainer.mixup is not None, "clip", step.trainer.clip_grad)
times = []
for r in range(6):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
times = times[1:]
print("new real step", [round(x, 3) for x in times], "median", round(statistics.median(times), 3))
json.dump({"step_s": statistics.median(times), "times": times}, open(out, "w"))
