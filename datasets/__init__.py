"""Data: NTU and P3AR-PKU naming and benchmarks, sources per layout, sampling, source wrappers, the item
builder, mixup, loaders, and the device end of the data path."""
from datasets.dataset import ClipCollate, ClipDataset, Restoration, sample_rng
from datasets.device import to_device
from datasets.items import ItemBuilder, request_frames
from datasets.loader import (DataSplits, EvalSampler, Loaders, TrainSampler, build_datasets, build_loaders,
                             collate_for)
from datasets.mixup import Mixup, build_mixup
from datasets.names import load_class_names, parse_name, split_names
from datasets.ntu import NtuName
from datasets.pku import PkuName
from datasets.readers import DataError, FrameFolderClip, PrecomputedClip
from datasets.sampling import FrameSampler
from datasets.video import VideoClip

__all__ = [
    "ClipCollate", "ClipDataset", "DataError", "DataSplits", "EvalSampler", "FrameFolderClip",
    "FrameSampler", "ItemBuilder", "Loaders", "Mixup", "NtuName", "PkuName", "PrecomputedClip", "Restoration",
    "TrainSampler", "VideoClip", "build_datasets", "build_loaders", "build_mixup", "collate_for",
    "load_class_names", "parse_name", "request_frames", "sample_rng", "split_names", "to_device",
]
