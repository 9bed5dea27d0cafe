"""LPS-HAR launcher: train and evaluate MSPNet (single process, torchrun or torch.distributed.launch).

    python main.py                                    # embedded demo (synthetic LPS-NTU, tiny model)
    python main.py --config configs/NTU/NTU120_XSet.yaml --output output/x [--opts KEY VALUE ...]
    torchrun --nproc_per_node=4 main.py --config ... --output ...
    python main.py --config ... --resume CKPT --output output/x --only_test True
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn, Sequence

from yacs.config import CfgNode

from trainers.distributed import DistInfo, cleanup_distributed, init_distributed, world_info_from_env
from trainers.run import print_summary, run
from utils.allocator import keep_freed_memory
from utils.config import load_config
from utils.errors import USER_ERROR_EXIT_CODE, UserError
from utils.logger import log_traceback_to_file, setup_logging
from utils.misc import seed_everything
from utils.paths import ensure_writable_folder

logger = logging.getLogger(__name__)

TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what shells report for Ctrl-C


def str2bool(text: str) -> bool:
    """``True/False/1/0/yes/no`` (any case) -> bool; anything else is a usage error."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected True/False/1/0, got {text!r}")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one-line :class:`UserError`s."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see python main.py --help)")


def build_parser() -> argparse.ArgumentParser:
    """The command line of DESIGN section 4."""
    parser = _Parser(description="Train and evaluate MSPNet on LPS video.", allow_abbrev=False)
    parser.add_argument("--config", default=None, help="experiment YAML (default: configs/demo.yaml)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides as KEY VALUE pairs, applied last")
    parser.add_argument("--output", default=None, help="run folder (OUTPUT)")
    parser.add_argument("--resume", default=None, help="checkpoint to resume from, or 'auto' (MODEL.RESUME)")
    parser.add_argument("--pretrained", default=None, help="CLIP / original-release weights (MODEL.PRETRAINED)")
    parser.add_argument("--only_test", "--only-test", type=str2bool, nargs="?", const=True, default=None,
                        help="evaluate without training (TEST.ONLY_TEST)")
    parser.add_argument("--distributed", type=str2bool, nargs="?", const=True, default=None,
                        help="expect a distributed launch (DISTRIBUTED); ranks come from the environment")
    parser.add_argument("--batch-size", "--batch_size", type=int, default=None, help="TRAIN.BATCH_SIZE")
    parser.add_argument("--accumulation-steps", "--accumulation_steps", type=int, default=None,
                        help="TRAIN.ACCUMULATION_STEPS")
    parser.add_argument("--allow-pickle", "--allow_pickle", type=str2bool, nargs="?", const=True, default=None,
                        help="unpickle original-release checkpoints (runs code from the file; MODEL.ALLOW_PICKLE)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None,
                        help="set by torch.distributed.launch")
    return parser


def config_overrides(args: argparse.Namespace) -> list[str]:
    """``--opts`` followed by the dedicated flags as ``[KEY, VALUE, ...]`` (flags win)."""
    flags = {
        "OUTPUT": args.output,
        "MODEL.RESUME": args.resume,
        "MODEL.PRETRAINED": args.pretrained,
        "TEST.ONLY_TEST": args.only_test,
        "DISTRIBUTED": args.distributed,
        "TRAIN.BATCH_SIZE": args.batch_size,
        "TRAIN.ACCUMULATION_STEPS": args.accumulation_steps,
        "MODEL.ALLOW_PICKLE": args.allow_pickle,
    }
    opts = list(args.opts)
    for key, value in flags.items():
        if value is not None:
            opts += [key, repr(value)]  # a Python literal, so yacs keeps strings as strings
    return opts


def _is_main_process(info: DistInfo | None) -> bool:
    """Rank 0, also before the process group exists (the launcher's or SLURM's variables)."""
    if info is not None:
        return info.is_main
    return world_info_from_env()[0] == 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the launcher.

    Args:
        argv: command-line arguments without the program name (``None`` = ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 on a user mistake (one line on stderr).
    """
    info = None
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        cfg = load_config(args.config, config_overrides(args))
        info = init_distributed(args.local_rank)
        return _run(cfg, info)
    except UserError as exc:
        if _is_main_process(info):
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        log_traceback_to_file("user error" + (f"; in a loader worker:\n{exc.worker_traceback}"
                                               if exc.worker_traceback else ""))
        return USER_ERROR_EXIT_CODE
    except KeyboardInterrupt:
        if _is_main_process(info):
            print("interrupted: the last completed checkpoint is kept; resume with --resume auto "
                  "(and the same --output)", file=sys.stderr)
        log_traceback_to_file("interrupted")
        return INTERRUPTED_EXIT_CODE
    finally:
        cleanup_distributed()


def _run(cfg: CfgNode, info: DistInfo) -> int:
    ensure_writable_folder(cfg.OUTPUT, "--output")
    setup_logging(cfg.OUTPUT, info.rank)
    if cfg.DISTRIBUTED and not info.distributed:
        logger.warning("DISTRIBUTED is set but the environment describes one process; running single-process")
    if info.device.type == "cpu" and keep_freed_memory():
        logger.info("host allocator: freed memory is kept for reuse (utils/allocator.py)")
    seed_everything(cfg.SEED + info.rank)
    metrics = run(cfg, info)
    if info.is_main:
        print_summary(metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
