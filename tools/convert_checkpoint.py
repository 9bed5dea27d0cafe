"""Converts an original-release MSPNet checkpoint to this project's checkpoint format.

Usage: ``python tools/convert_checkpoint.py SRC DST [--allow-pickle]``

The original files pickle their yacs config, so reading them runs code from the file: pass
``--allow-pickle`` only for files you trust. DST holds ``{"model": state_dict, "converted_from": SRC}``
and loads with ``torch.load(weights_only=True)``; pass it to ``--pretrained`` or ``--resume``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

import torch

from models.convert import (CheckpointError, convert_original_state_dict, extract_state_dict,
                            is_original_state_dict, load_checkpoint_file)
from utils.errors import USER_ERROR_EXIT_CODE, UserError

logger = logging.getLogger(__name__)


def convert_file(src: str, dst: str, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Reads the original checkpoint ``src`` and writes the converted one to ``dst`` atomically.

    Args:
        src: original-release checkpoint (or a bare original state dict).
        dst: output file.
        allow_pickle: opt-in to unpickle ``src``.

    Returns:
        The converted state dict.

    Raises:
        CheckpointError: unreadable ``src``, pickled content without the opt-in, or a file that is
            not an original-release checkpoint.
    """
    state_dict = extract_state_dict(load_checkpoint_file(src, allow_pickle))
    if not is_original_state_dict(state_dict):
        raise CheckpointError(f"{src} is not an original-release MSPNet checkpoint (no sft.* / "
                              "prompts_generator.* keys); it needs no conversion")
    converted = convert_original_state_dict(state_dict)
    tmp = f"{dst}.tmp"
    torch.save({"model": converted, "converted_from": os.path.abspath(src)}, tmp)
    os.replace(tmp, dst)
    return converted


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="original-release checkpoint (.pth)")
    parser.add_argument("dst", help="output checkpoint in this project's format")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="unpickle SRC (runs code from the file; only for trusted files)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        converted = convert_file(args.src, args.dst, args.allow_pickle)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    logger.info("wrote %s (%d tensors) converted from %s", args.dst, len(converted), args.src)
    return 0


if __name__ == "__main__":
    sys.exit(main())
