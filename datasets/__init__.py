"""Data: NTU naming and benchmarks, readers, IFNS planes, sampling, transforms, mixup, loaders."""
from datasets.dataset import ClipCollate, ClipDataset, sample_rng
from datasets.ifns import CLIP_MEAN, CLIP_STD, ifns_planes, needed_frames, normalize_planes
from datasets.loader import (DataSplits, EvalSampler, Loaders, TrainSampler, build_datasets,
                             build_device_planes, build_loaders)
from datasets.mixup import Mixup, build_mixup
from datasets.ntu import NtuName, load_class_names, parse_name, split_names
from datasets.readers import DataError, FrameFolderClip, PrecomputedClip, VideoClip

__all__ = [
    "CLIP_MEAN", "CLIP_STD", "ClipCollate", "ClipDataset", "DataError", "DataSplits",
    "EvalSampler", "FrameFolderClip", "Loaders", "Mixup", "NtuName", "PrecomputedClip",
    "TrainSampler", "VideoClip", "build_datasets", "build_device_planes", "build_loaders",
    "build_mixup", "ifns_planes", "load_class_names", "needed_frames", "normalize_planes",
    "parse_name", "sample_rng", "split_names",
]
