"""Generates the synthetic P3AR-PKU dataset (see :mod:`datasets.synthetic_pku`).

The defaults are the demo set of ``configs/PKU/demo.yaml``. Example::

    python tools/synth_pku.py --out data/synth_pku --seed 0 --lps-level 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from datasets.synthetic import DEFAULT_WORKERS, generate_pku
from datasets.synthetic_pku import pku_clip_keys
from utils.config import load_config
from utils.errors import USER_ERROR_EXIT_CODE, UserError
from utils.paths import PROJECT_ROOT

DEMO_CONFIG = PROJECT_ROOT / "configs" / "PKU" / "demo.yaml"  # its DATA.SYNTHETIC gives the defaults


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--help`` lists it)."""
    syn = load_config(DEMO_CONFIG).DATA.SYNTHETIC
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="destination folder (must not exist)")
    parser.add_argument("--seed", type=int, required=True, help="generator seed (same seed, same bytes)")
    parser.add_argument("--lps-level", type=int, default=syn.LPS_LEVEL, choices=(1, 2, 3),
                        help="film layers of the degraded copy")
    parser.add_argument("--size", type=int, default=syn.SIZE, help="frame side in pixels")
    parser.add_argument("--frames", type=int, default=syn.NUM_FRAMES, help="frames per clip")
    parser.add_argument("--actions", type=int, default=syn.NUM_ACTIONS, help="actions (motions)")
    parser.add_argument("--people", type=int, default=syn.NUM_PERFORMERS,
                        help="people (their five attributes are drawn once each)")
    parser.add_argument("--setups", type=int, default=syn.NUM_SETUPS, choices=(1, 2),
                        help="setups (xset: 1 trains, 2 validates)")
    parser.add_argument("--cameras", type=int, default=syn.NUM_CAMERAS, choices=(1, 2, 3), help="viewpoints")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="rendering processes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Writes the set; returns the exit status (2 with a one-line error for a user mistake)."""
    args = parse_args(argv)
    start = time.time()
    try:
        out = generate_pku(args.out, seed=args.seed, size=args.size, num_frames=args.frames,
                           num_actions=args.actions, num_people=args.people, num_setups=args.setups,
                           num_cameras=args.cameras, lps_level=args.lps_level, workers=args.workers,
                           progress=True)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    clips = len(pku_clip_keys(seed=args.seed, num_actions=args.actions, num_people=args.people,
                              num_setups=args.setups, num_cameras=args.cameras))
    print(f"wrote {clips} clips (raw and LPS level {args.lps_level}) to {out} "
          f"in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
