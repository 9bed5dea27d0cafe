"""Weight files into MSPNet: OpenAI CLIP (TorchScript archive or state dict) and open_clip files
fill the CLIP towers; this project's and the original release's checkpoints fill everything."""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from models.convert import (CheckpointError, convert_original_state_dict, extract_state_dict,
                            is_original_state_dict, load_checkpoint_file)
from models.mspnet import MSPNet

logger = logging.getLogger(__name__)

LISTED_KEYS = 4  # offending keys named in a loading error
# Keys of CLIP files that are not parameters of the towers.
CLIP_NON_PARAMETER_KEYS = ("input_resolution", "context_length", "vocab_size", "attn_mask")


def clean_clip_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Strips wrappers from a CLIP / open_clip state dict: ``module.`` prefixes, non-parameters."""
    cleaned = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key in CLIP_NON_PARAMETER_KEYS or not isinstance(value, Tensor):
            continue
        cleaned[key] = value
    return cleaned


def resize_positional_embedding(pos: Tensor, num_tokens: int) -> Tensor:
    """Resizes a ViT positional embedding [1 + g*g, d] to [num_tokens, d] (bicubic over the grid).

    Args:
        pos: class-token row followed by the square patch grid.
        num_tokens: 1 + the new grid's patch count.
    """
    if pos.shape[0] == num_tokens:
        return pos
    old_grid, new_grid = math.isqrt(pos.shape[0] - 1), math.isqrt(num_tokens - 1)
    grid = pos[1:].reshape(1, old_grid, old_grid, -1).permute(0, 3, 1, 2)  # [1, d, g, g]
    grid = F.interpolate(grid.float(), size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(new_grid * new_grid, -1).to(pos.dtype)
    logger.info("resized the vision positional embedding from a %dx%d to a %dx%d grid",
                old_grid, old_grid, new_grid, new_grid)
    return torch.cat([pos[:1], grid], dim=0)


def load_pretrained(model: MSPNet, path: str, allow_pickle: bool = False) -> None:
    """Fills ``model`` from a weight file and logs one summary of what was loaded.

    Accepted files: an OpenAI CLIP TorchScript archive or state dict, an open_clip checkpoint
    (both fill the CLIP towers; the CFSA/IFNS/temporal/prompt/identity modules keep their init),
    this project's checkpoint, or an original-release checkpoint (converted on the fly).

    Args:
        model: an :class:`~models.mspnet.MSPNet`.
        path: the file.
        allow_pickle: opt-in to unpickle original-release checkpoints.

    Raises:
        CheckpointError: missing/unreadable file, or weights that do not fit the configured size.
    """
    own = model.state_dict()
    new = model.new_parameter_names()
    state_dict = extract_state_dict(load_checkpoint_file(path, allow_pickle))
    if is_original_state_dict(state_dict):
        state_dict, kind = convert_original_state_dict(state_dict), "original-release MSPNet"
    else:
        state_dict = clean_clip_state_dict(state_dict)
        kind = "MSPNet" if new & set(state_dict) else "CLIP"
    key = "visual.positional_embedding"
    if key in state_dict and key in own:
        state_dict[key] = resize_positional_embedding(state_dict[key], own[key].shape[0])
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = sorted(k for k in set(state_dict) & set(own) if state_dict[k].shape != own[k].shape)
    if unexpected or mismatched:
        bad = ", ".join((unexpected + mismatched)[:LISTED_KEYS])
        raise CheckpointError(f"{path} ({kind}) does not fit MODEL.ARCH / DATA sizes: unexpected or "
                              f"mismatched {bad}; pick the matching MODEL.ARCH or MODEL.PRETRAINED none")
    missing = set(own) - set(state_dict)
    if missing != (new if kind == "CLIP" else set()):  # a CLIP file lacks exactly the new modules
        lacking = sorted(missing - new if kind == "CLIP" else missing)
        raise CheckpointError(f"{path} ({kind}) is incomplete: it lacks {', '.join(lacking[:LISTED_KEYS])}; "
                              "pass a complete file or MODEL.PRETRAINED none")
    model.load_state_dict({**own, **state_dict})
    values = sum(v.numel() for v in state_dict.values())
    left = (f"{len(missing)} tensors of the new modules (visual.conv0, message_fc/ln/attn, temporal, "
            "prompt, privacy heads)") if missing else "nothing"
    logger.info("loaded %d tensors (%.2fM values) from %s (%s); left at init: %s", len(state_dict),
                values / 1e6, path, kind, left)
