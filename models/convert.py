"""Checkpoint files: reading them safely and converting the original release's parameter names.

The original release (X-CLIP lineage) names its modules ``sft`` (temporal fusion),
``prompts_visual_ln`` / ``prompts_visual_proj`` / ``prompts_generator`` (video prompt, with
separate ``q_proj``/``k_proj``/``v_proj`` and ``proj``) and ``id_classifier`` (P3AR-PKU:
``id_classifier_22`` and the attribute heads ``uuu_classifier`` ... ``yyy_classifier``); this
project calls them ``temporal``, ``prompt`` (one packed ``in_proj_weight`` and ``out_proj``) and
``heads.identity`` (``heads.gender``, ``heads.hairstyle``, ``heads.glasses``, ``heads.upper``,
``heads.lower``). The inverse conversion writes the NTU name ``id_classifier``.
Vision (``visual.*``) and text keys are the same in both.
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from typing import Any

import torch
from torch import Tensor

from utils.errors import UserError

# original name <-> our name, for keys renamed one to one; {i} is a layer number, {norm} norm1 or
# norm3, {rest} the remainder of the key. Both directions are compiled from this one table.
_RENAMES = (
    ("sft.positional_embedding", "temporal.positional_embedding"),
    ("sft.resblocks.{i}.{rest}", "temporal.transformer.resblocks.{i}.{rest}"),
    ("prompts_visual_ln.{rest}", "prompt.visual_ln.{rest}"),
    ("prompts_visual_proj", "prompt.visual_proj"),
    ("prompts_generator.norm.{rest}", "prompt.norm.{rest}"),
    ("prompts_generator.alpha", "prompt.alpha"),
    ("prompts_generator.decoder.{i}.{norm}.{rest}", "prompt.decoder.{i}.{norm}.{rest}"),
    ("prompts_generator.decoder.{i}.mlp.0.{rest}", "prompt.decoder.{i}.mlp.c_fc.{rest}"),
    ("prompts_generator.decoder.{i}.mlp.3.{rest}", "prompt.decoder.{i}.mlp.c_proj.{rest}"),
    ("prompts_generator.decoder.{i}.cross_attn.proj.{rest}",
     "prompt.decoder.{i}.cross_attn.out_proj.{rest}"),
    ("id_classifier.{rest}", "heads.identity.{rest}"),
    # the P3AR-PKU model's heads (its mspnet_pku.py): identity of 22 people and five attributes
    ("id_classifier_22.{rest}", "heads.identity.{rest}"),
    ("uuu_classifier.{rest}", "heads.gender.{rest}"),
    ("vvv_classifier.{rest}", "heads.hairstyle.{rest}"),
    ("www_classifier.{rest}", "heads.glasses.{rest}"),
    ("xxx_classifier.{rest}", "heads.upper.{rest}"),
    ("yyy_classifier.{rest}", "heads.lower.{rest}"),
)
_PLACEHOLDERS = {"i": r"\d+", "norm": "norm1|norm3", "rest": ".+"}
_QKV = ("q_proj", "k_proj", "v_proj")
_ORIGINAL_QKV = re.compile(r"^prompts_generator\.decoder\.(\d+)\.cross_attn\.([qkv])_proj\.weight$")
_OUR_IN_PROJ = re.compile(r"^prompt\.decoder\.(\d+)\.cross_attn\.in_proj_weight$")
_ORIGINAL_MARKERS = ("sft.positional_embedding", "prompts_generator.alpha")
_MODEL_KEYS = ("model", "state_dict")
_MAX_REASON = 200  # characters of a loader's exception quoted in the one-line error
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's zip archive (and TorchScript's)
PICKLE_PROTOCOL = 0x80  # first byte of a pickle of protocol 2 or higher (torch.save's legacy format)


class CheckpointError(UserError):
    """A checkpoint file that is missing, unreadable, of the wrong kind or needs an explicit opt-in
    (the one checkpoint error of the project; :mod:`trainers.checkpoint` raises it too)."""


def is_original_state_dict(state_dict: dict[str, Any]) -> bool:
    """True when ``state_dict`` uses the original release's names (``sft.*``, ``prompts_*``)."""
    return any(key in state_dict for key in _ORIGINAL_MARKERS)


def _template_regex(template: str) -> re.Pattern:
    """``a.{i}.{rest}`` -> a regex with one named group per placeholder."""
    pattern = re.escape(template)
    for name, group in _PLACEHOLDERS.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{group})")
    return re.compile(pattern)


def _rename(key: str, inverse: bool = False) -> str:
    """Original name -> ours by :data:`_RENAMES` (ours -> original with ``inverse``)."""
    for original, ours in _RENAMES:
        source, target = (ours, original) if inverse else (original, ours)
        match = _template_regex(source).fullmatch(key)
        if match:
            return target.format(**match.groupdict())
    return key


def convert_original_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Original-release state dict -> this project's names (layer counts read from the keys).

    The prompt decoder's separate q/k/v projection weights are concatenated into
    ``in_proj_weight``; every other tensor is renamed unchanged. Pure function.
    """
    converted: dict[str, Tensor] = {}
    qkv: dict[str, dict[str, Tensor]] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        match = _ORIGINAL_QKV.match(key)
        if match:
            qkv.setdefault(match.group(1), {})[match.group(2)] = value
        else:
            converted[_rename(key)] = value
    for layer, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"prompt decoder layer {layer} lacks some of q_proj/k_proj/v_proj; "
                                  "the checkpoint is incomplete")
        converted[f"prompt.decoder.{layer}.cross_attn.in_proj_weight"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]], dim=0)
    return converted


def to_original_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """This project's state dict -> the original release's names (inverse of the conversion)."""
    original: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        match = _OUR_IN_PROJ.match(key)
        if match:
            for name, part in zip(_QKV, value.chunk(3, dim=0)):
                original[f"prompts_generator.decoder.{match.group(1)}.cross_attn.{name}.weight"] = part
        else:
            original[_rename(key, inverse=True)] = value
    return original


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or name == "constants.pkl"
                   for name in archive.namelist())


def load_checkpoint_file(path: str, allow_pickle: bool, mmap: bool = False) -> dict[str, Any]:
    """Reads a checkpoint or weight file onto the CPU: the one reader of every checkpoint of the
    project (pretrained weights here, resume files in :mod:`trainers.checkpoint`).

    TorchScript archives (OpenAI CLIP releases) give their state dict. Other files are read with
    ``torch.load(weights_only=True)``; a file that pickles objects (the original release's yacs
    config) is unpickled only when ``allow_pickle`` is set, because unpickling runs code.

    Args:
        path: the file.
        allow_pickle: opt-in to ``weights_only=False`` for files that need it.
        mmap: map the tensors of a ``torch.save`` zip file instead of reading them (cheap when
            only the small entries are wanted).

    Returns:
        The loaded dict (a state dict or a checkpoint dict holding one).

    Raises:
        CheckpointError: missing or unreadable file, or pickled content without the opt-in.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path} (pass a local file; nothing is "
                              "downloaded)")
    _check_kind(path)
    try:
        if _is_torchscript(path):
            with warnings.catch_warnings():  # torch.jit is deprecated, but OpenAI ships TorchScript
                warnings.simplefilter("ignore", FutureWarning)
                return dict(torch.jit.load(path, map_location="cpu").state_dict())
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True,
                                mmap=mmap and zipfile.is_zipfile(path))
        except pickle.UnpicklingError:
            if not allow_pickle:
                raise CheckpointError(
                    f"{path} pickles Python objects (an original-release checkpoint's config); "
                    "loading it runs code from the file: if you trust it, pass --allow-pickle "
                    "(MODEL.ALLOW_PICKLE True)") from None
            loaded = _unpickle(path)
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {_reason(exc)}; pass a complete file "
                              "written by torch.save") from None
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not a state dict or checkpoint")
    return loaded


def _check_kind(path: str) -> None:
    """Raises CheckpointError unless the file starts like a ``torch.save`` file (a zip archive or
    a pickle): text, random bytes or a truncated download never reach the unpickler."""
    with open(path, "rb") as f:
        head = f.read(len(ZIP_MAGIC))
    if not (head.startswith(ZIP_MAGIC) or head[:1] == bytes([PICKLE_PROTOCOL])):
        size = os.path.getsize(path)
        raise CheckpointError(f"{path} is not a checkpoint ({size} bytes that are neither a torch.save "
                              "archive nor a pickle); pass a .pth file written by torch.save")


def _reason(exc: BaseException) -> str:
    """An exception as one short line."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:_MAX_REASON]


def _unpickle(path: str) -> Any:
    """``torch.load(weights_only=False)``; an arbitrary pickle can fail in any way, reported as
    one :class:`CheckpointError` line."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"cannot unpickle checkpoint {path}: {_reason(exc)}; pass a file "
                              "written by this project or the original release") from None


def extract_state_dict(checkpoint: dict[str, Any]) -> dict[str, Tensor]:
    """The model state dict inside a checkpoint dict (``model`` or ``state_dict`` entry, or the
    dict itself), with ``module.`` prefixes removed."""
    for key in _MODEL_KEYS:
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return {k.removeprefix("module."): v for k, v in checkpoint.items()}
