"""Generates the synthetic LPS-NTU dataset (see :mod:`datasets.synthetic`).

Example::

    python tools/synth_ntu.py --out data/synth_ntu --seed 0 --lps-level 2
    python tools/synth_ntu.py --out data/synth_ntu_lensless --seed 0 --device lensless
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

from yacs.config import CfgNode

from datasets.optics import CAMERAS
from datasets.synthetic import DEFAULT_WORKERS, clip_keys, generate
from utils.config import get_defaults
from utils.errors import USER_ERROR_EXIT_CODE, UserError


def add_set_arguments(parser: argparse.ArgumentParser, syn: CfgNode) -> None:
    """The arguments both synthetic sets take (defaults from ``syn``, a ``DATA.SYNTHETIC`` node)."""
    parser.add_argument("--out", type=Path, required=True, help="destination folder (must not exist)")
    parser.add_argument("--seed", type=int, required=True, help="generator seed (same seed, same bytes)")
    parser.add_argument("--lps-level", type=int, default=syn.LPS_LEVEL, choices=(1, 2, 3),
                        help="privacy level of the degraded copy (the film's layers)")
    parser.add_argument("--device", default=syn.DEVICE, choices=CAMERAS, help="camera of the degraded copy")
    parser.add_argument("--size", type=int, default=syn.SIZE, help="frame side in pixels")
    parser.add_argument("--frames", type=int, default=syn.NUM_FRAMES, help="frames per clip")
    parser.add_argument("--actions", type=int, default=syn.NUM_ACTIONS, help="actions (motions)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="rendering processes")


def write_set(args: argparse.Namespace, write: Callable[[], Path], clips: int) -> int:
    """Runs ``write`` (the generator with ``args``) and reports it; the exit status (2 with a
    one-line error for a user mistake)."""
    start = time.time()
    try:
        out = write()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    print(f"wrote {clips} clips (raw and {args.device} level {args.lps_level}) to {out} "
          f"in {time.time() - start:.1f} s")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--help`` lists it)."""
    syn = get_defaults().DATA.SYNTHETIC
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_set_arguments(parser, syn)
    parser.add_argument("--performers", type=int, default=syn.NUM_PERFORMERS, help="identities")
    parser.add_argument("--setups", type=int, default=syn.NUM_SETUPS, help="backgrounds / lightings")
    parser.add_argument("--cameras", type=int, default=syn.NUM_CAMERAS, help="viewpoints")
    parser.add_argument("--replications", type=int, default=syn.NUM_REPLICATIONS,
                        help="replications per (setup, camera, performer, action)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Writes the set; returns the exit status."""
    args = parse_args(argv)
    counts = dict(num_actions=args.actions, num_performers=args.performers, num_setups=args.setups,
                  num_cameras=args.cameras, num_replications=args.replications)
    return write_set(args, lambda: generate(args.out, seed=args.seed, size=args.size, num_frames=args.frames,
                                            lps_level=args.lps_level, device=args.device, workers=args.workers,
                                            progress=True, **counts), len(clip_keys(**counts)))


if __name__ == "__main__":
    sys.exit(main())
