"""Generates the synthetic P3AR-PKU dataset (see :mod:`datasets.synthetic_pku`).

The defaults are the demo set of ``configs/PKU/demo.yaml``. Example::

    python tools/synth_pku.py --out data/synth_pku --seed 0 --lps-level 2
"""
from __future__ import annotations

import argparse
import sys

from datasets.synthetic import generate_pku
from datasets.synthetic_pku import pku_clip_keys
from tools.synth_ntu import add_set_arguments, write_set
from utils.config import load_config
from utils.paths import PROJECT_ROOT

DEMO_CONFIG = PROJECT_ROOT / "configs" / "PKU" / "demo.yaml"  # its DATA.SYNTHETIC gives the defaults


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--help`` lists it)."""
    syn = load_config(DEMO_CONFIG).DATA.SYNTHETIC
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_set_arguments(parser, syn)
    parser.add_argument("--people", type=int, default=syn.NUM_PERFORMERS,
                        help="people (their five attributes are drawn once each)")
    parser.add_argument("--setups", type=int, default=syn.NUM_SETUPS, choices=(1, 2),
                        help="setups (xset: 1 trains, 2 validates)")
    parser.add_argument("--cameras", type=int, default=syn.NUM_CAMERAS, choices=(1, 2, 3), help="viewpoints")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Writes the set; returns the exit status (2 with a one-line error for a user mistake)."""
    args = parse_args(argv)
    counts = dict(num_actions=args.actions, num_people=args.people, num_setups=args.setups, num_cameras=args.cameras)
    return write_set(args, lambda: generate_pku(args.out, seed=args.seed, size=args.size, num_frames=args.frames,
                                                lps_level=args.lps_level, device=args.device, workers=args.workers,
                                                progress=True, **counts),
                     len(pku_clip_keys(seed=args.seed, **counts)))


if __name__ == "__main__":
    sys.exit(main())
