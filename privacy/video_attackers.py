"""Video-level attackers (STPrivacy's point: an adversary probes the whole clip, not its frames):
frame features pooled by a small temporal model (a GRU over the frames), and torchvision 3D CNNs (R3D-18,
R(2+1)D-18) from scratch or from a local weights file. Each takes clips ``[B, T, 3, S, S]`` and
returns logits ``[B, C]``."""
from __future__ import annotations

import os

import timm
import torch
from torch import nn
from torchvision.models import video as tv_video

from utils.errors import UserError

VIDEO_ATTACKERS = ("temporal", "r3d_18", "r2plus1d_18")
FRAME_BACKBONE = "resnet18"  # the temporal attacker's per-frame encoder (timm)
TEMPORAL_WIDTH = 128  # hidden width of the temporal GRU


class TemporalAttacker(nn.Module):
    """Per-frame CNN features, a GRU over the T frames in order (it sees the motion, not only the
    set of frames), a linear classifier on its last state.

    Args:
        num_classes: outputs.
        num_frames: T (kept for the interface; the GRU takes any length).
        weights: optional local timm weights file of the frame encoder.
    """

    def __init__(self, num_classes: int, num_frames: int, weights: str = "") -> None:
        super().__init__()
        extra = {"pretrained": True, "pretrained_cfg_overlay": {"file": weights}} if weights else {}
        self.frames = timm.create_model(FRAME_BACKBONE, num_classes=0, **extra)
        self.num_frames = num_frames
        self.temporal = nn.GRU(self.frames.num_features, TEMPORAL_WIDTH, batch_first=True)
        self.head = nn.Linear(TEMPORAL_WIDTH, num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips [B, T, 3, S, S] -> logits [B, C]."""
        b, t = clips.shape[:2]
        feats = self.frames(clips.flatten(0, 1)).unflatten(0, (b, t))  # [B, T, D]
        _, last = self.temporal(feats)  # [1, B, W]
        return self.head(last[0])


class Video3DAttacker(nn.Module):
    """A torchvision 3D CNN on clips (its stem expects ``[B, 3, T, S, S]``).

    Args:
        name: r3d_18 | r2plus1d_18.
        num_classes: outputs.
        weights: optional local state-dict file of the network (its classifier is replaced).
    """

    def __init__(self, name: str, num_classes: int, weights: str = "") -> None:
        super().__init__()
        self.net = getattr(tv_video, name)(weights=None)
        if weights:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            missing, unexpected = self.net.load_state_dict(state, strict=False)
            if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
                raise UserError(f"--weights {weights} does not fit {name}: missing {sorted(missing)[:3]}, "
                                f"unexpected {sorted(unexpected)[:3]}; pass a torchvision {name} state dict")
        self.net.fc = nn.Linear(self.net.fc.in_features, num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips [B, T, 3, S, S] -> logits [B, C]."""
        return self.net(clips.transpose(1, 2))  # [B, 3, T, S, S]


def build_video_attacker(name: str, num_classes: int, num_frames: int, weights: str = "") -> nn.Module:
    """A fresh video attacker of :data:`VIDEO_ATTACKERS`.

    Raises:
        UserError: a missing ``weights`` file.
    """
    if weights and not os.path.isfile(weights):
        raise UserError(f"--weights file not found: {weights}")
    if name == "temporal":
        return TemporalAttacker(num_classes, num_frames, weights)
    return Video3DAttacker(name, num_classes, weights)
