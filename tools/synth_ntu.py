"""Generates the synthetic LPS-NTU dataset (see :mod:`datasets.synthetic`).

Example::

    python tools/synth_ntu.py --out data/synth_ntu --seed 0 --lps-level 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from datasets.synthetic import DEFAULT_WORKERS, clip_keys, generate
from utils.config import get_defaults
from utils.errors import USER_ERROR_EXIT_CODE, UserError



def parse_args(argv: list[str] | None) -> argparse.Namespace:
    syn = get_defaults().DATA.SYNTHETIC
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="destination folder (must not exist)")
    parser.add_argument("--seed", type=int, required=True, help="generator seed (same seed, same bytes)")
    parser.add_argument("--lps-level", type=int, default=syn.LPS_LEVEL, choices=(1, 2, 3),
                        help="film layers of the degraded copy")
    parser.add_argument("--size", type=int, default=syn.SIZE, help="frame side in pixels")
    parser.add_argument("--frames", type=int, default=syn.NUM_FRAMES, help="frames per clip")
    parser.add_argument("--actions", type=int, default=syn.NUM_ACTIONS, help="actions (motions)")
    parser.add_argument("--performers", type=int, default=syn.NUM_PERFORMERS, help="identities")
    parser.add_argument("--setups", type=int, default=syn.NUM_SETUPS, help="backgrounds / lightings")
    parser.add_argument("--cameras", type=int, default=syn.NUM_CAMERAS, help="viewpoints")
    parser.add_argument("--replications", type=int, default=syn.NUM_REPLICATIONS,
                        help="replications per (setup, camera, performer, action)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="rendering processes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.time()
    try:
        out = generate(args.out, seed=args.seed, size=args.size, num_frames=args.frames,
                       num_actions=args.actions, num_performers=args.performers,
                       num_setups=args.setups, num_cameras=args.cameras,
                       num_replications=args.replications, lps_level=args.lps_level,
                       workers=args.workers, progress=True)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    clips = len(clip_keys(num_actions=args.actions, num_performers=args.performers,
                          num_setups=args.setups, num_cameras=args.cameras,
                          num_replications=args.replications))
    print(f"wrote {clips} clips (raw and LPS level {args.lps_level}) to {out} "
          f"in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
