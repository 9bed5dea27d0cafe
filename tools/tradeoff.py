"""Privacy-utility trade-off: a grid of input encoders x LPS levels, trained and attacked.

For each cell (encoder E, film level L) of the grid the tool

1. trains the action model (``main.py`` in a subprocess) with ``MODEL.ENCODER E`` on the data of
   level L: the synthetic set generated at ``DATA.SYNTHETIC.LPS_LEVEL L`` (its LPS copy), or its raw
   copy for L = 0 (no film);
2. trains a fresh identity attacker (:mod:`tools.privacy_attack`, ``--target planes``) on what
   the model sees (the IFNS planes, or the baseline encoder's output with its learned parameters);

and, once per level, attacks the camera's frames themselves (``--target frames``) without and
with deconvolution (``--restore wiener``; the film is known). It writes ``tradeoff.csv``,
``tradeoff.md`` and ``tradeoff.png`` (action top-1 against attacker identity top-1; the ideal
corner is high action accuracy at chance identity accuracy). Finished runs are reused (a cell
whose ``metrics.json`` / ``privacy.json`` exists is not run again); ``--collect`` only gathers.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models import ENCODERS
from privacy import FRAME_ATTACKERS, VIDEO_ATTACKERS
from tools import privacy_attack
from utils.config import load_config
from utils.misc import atomic_write, atomic_write_text
from utils.paths import PROJECT_ROOT
from utils.errors import UserError
from utils.logger import setup_logging

logger = logging.getLogger(__name__)

LEVELS = (0, 1, 2, 3)
QUICK_TRAIN_EPOCHS = 6  # --quick: action-model epochs per cell (tested once, after the last)
QUICK_ATTACK_EPOCHS = 2  # --quick: attacker epochs
QUICK_ATTACK_VIDEOS = 20  # --quick: attacker videos per identity in each half
QUICK_OPTS = ("TRAIN.WARMUP_EPOCHS", "1", "TEST.NUM_CLIP", "1", "SAVE_FREQ", "1000", "EVAL_FREQ", "1000")
FRAME_ATTACKER = "resnet18"
FRAMES_ROW = "camera frames"  # the encoder column of the frame attacks
PLOT_DPI = 150
FIGURE_SIZE = (6.5, 4.8)
MARKERS = {0: "o", 1: "s", 2: "^", 3: "D"}
CHECKPOINTS = ("best.pth", "last.pth")


@dataclass
class Row:
    """One line of the trade-off table (accuracies in percent; None = not available).

    Args:
        encoder: input encoder, or ``camera frames`` for the frame attacks.
        level: film layers (0 = raw).
        restore: none | wiener | richardson_lucy (frame attacks).
        acc1: action top-1 of the trained model.
        head_id_acc1: identity top-1 of the co-trained identity head.
        attack_id_acc1: identity top-1 of the fresh attacker on held-out videos.
        attack_id_acc5: its top-5.
        chance: identity chance level.
        run: the run folder.
        note: why a value is missing.
    """

    encoder: str
    level: int
    restore: str = "none"
    acc1: float | None = None
    head_id_acc1: float | None = None
    attack_id_acc1: float | None = None
    attack_id_acc5: float | None = None
    chance: float | None = None
    run: str = ""
    note: str = field(default="")


def level_opts(level: int) -> list[str]:
    """Config overrides that select the data of film level ``level`` (0 = the raw copy)."""
    if level == 0:
        return ["DATA.SYNTHETIC.SOURCE", "raw"]
    return ["DATA.SYNTHETIC.SOURCE", "lps", "DATA.SYNTHETIC.LPS_LEVEL", str(level)]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def train_cell(config: str | None, run_dir: Path, opts: list[str]) -> bool:
    """Trains one cell with ``main.py`` in a subprocess; True when metrics.json exists after."""
    if (run_dir / "metrics.json").is_file():
        return True
    cmd = [sys.executable, str(PROJECT_ROOT / "main.py"), "--output", str(run_dir)]
    if config:
        cmd += ["--config", config]
    cmd += ["--opts", *opts]
    logger.info("training: %s", " ".join(cmd))
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "stdout.txt", "w") as out:
        rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
    if rc != 0:
        logger.error("training failed (exit %d), see %s", rc, run_dir / "stdout.txt")
    return (run_dir / "metrics.json").is_file()


def attack_cell(config: str | None, out_dir: Path, opts: list[str], extra: list[str]) -> dict | None:
    """Runs :mod:`tools.privacy_attack` in this process unless its privacy.json exists."""
    result = out_dir / "privacy.json"
    if not result.is_file():
        argv = ["--output", str(out_dir), *extra]
        if config:
            argv += ["--config", config]
        argv += ["--opts", *opts]
        logger.info("attack: %s", " ".join(argv))
        if privacy_attack.main(argv) != 0:
            logger.error("attack failed, see %s", out_dir / "log.txt")
    return _read_json(result)


def _checkpoint(run_dir: Path) -> str:
    for name in CHECKPOINTS:
        if (run_dir / name).is_file():
            return str(run_dir / name)
    return ""


def run_grid(args: argparse.Namespace, output: Path) -> list[Row]:
    """Runs (or, with ``--collect``, only reads) every cell; returns the table rows."""
    train_extra = [str(v) for v in args.opts]
    attack_extra: list[str] = []
    if args.quick:
        train_extra = ["TRAIN.EPOCHS", str(QUICK_TRAIN_EPOCHS), *QUICK_OPTS, *train_extra]
        attack_extra = ["--epochs", str(QUICK_ATTACK_EPOCHS), "--max-videos", str(QUICK_ATTACK_VIDEOS)]
    rows = []
    for level in args.levels:
        for encoder in args.encoders:
            run_dir = output / f"{encoder}_l{level}"
            opts = ["MODEL.ENCODER", encoder, *level_opts(level), *train_extra]
            row = Row(encoder=encoder, level=level, run=str(run_dir))
            if not args.collect:
                train_cell(args.config, run_dir, opts)
                setup_logging(str(output))
            metrics = _read_json(run_dir / "metrics.json")
            if metrics is None:
                row.note = "training missing or failed"
                rows.append(row)
                continue
            row.acc1, row.head_id_acc1 = metrics.get("acc1"), metrics.get("id_acc1")
            attack_dir = run_dir / "attack_planes"
            if args.collect:
                privacy = _read_json(attack_dir / "privacy.json")
            else:
                resume = ["--resume", _checkpoint(run_dir)] if _checkpoint(run_dir) else []
                privacy = attack_cell(args.config, attack_dir, opts,
                                      ["--target", "planes", "--attacker", args.attacker,
                                       *resume, *attack_extra])
                setup_logging(str(output))
            _fill(row, privacy)
            rows.append(row)
        restores = ["none"] + (["wiener"] if level > 0 else [])
        for restore in restores:
            attack_dir = output / f"frames_l{level}_{restore}"
            opts = [*level_opts(level), *[str(v) for v in args.opts]]
            row = Row(encoder=FRAMES_ROW, level=level, restore=restore, run=str(attack_dir))
            if args.collect:
                privacy = _read_json(attack_dir / "privacy.json")
            else:
                privacy = attack_cell(args.config, attack_dir, opts,
                                      ["--target", "frames", "--attacker", args.attacker,
                                       "--restore", restore, *attack_extra])
                setup_logging(str(output))
            _fill(row, privacy)
            rows.append(row)
    return rows


def _fill(row: Row, privacy: dict | None) -> None:
    if privacy is None:
        row.note = "attack missing or failed"
        return
    row.attack_id_acc1 = privacy.get("id_acc1")
    row.attack_id_acc5 = privacy.get("id_acc5")
    row.chance = privacy.get("chance")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def write_table(rows: list[Row], output: Path) -> None:
    """Writes ``tradeoff.csv`` and ``tradeoff.md``."""
    fields = list(asdict(rows[0])) if rows else list(Row.__dataclass_fields__)

    def write_csv(f) -> None:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))

    atomic_write(output / "tradeoff.csv", write_csv)
    lines = ["| input | LPS level | restore | action top-1 | id head top-1 | attacker id top-1 "
             "| attacker id top-5 | chance | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.encoder} | {r.level} | {r.restore} | {_fmt(r.acc1)} | "
                     f"{_fmt(r.head_id_acc1)} | {_fmt(r.attack_id_acc1)} | {_fmt(r.attack_id_acc5)} | "
                     f"{_fmt(r.chance)} | {r.note} |")
    atomic_write_text(output / "tradeoff.md", "\n".join(lines) + "\n")


def write_plot(rows: list[Row], output: Path) -> None:
    """Writes ``tradeoff.png``: action top-1 (x) against attacker identity top-1 (y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=FIGURE_SIZE)
    colours = plt.get_cmap("tab10")
    encoders = sorted({r.encoder for r in rows if r.encoder != FRAMES_ROW})
    for i, encoder in enumerate(encoders):
        for r in rows:
            if r.encoder == encoder and r.acc1 is not None and r.attack_id_acc1 is not None:
                ax.scatter(r.acc1, r.attack_id_acc1, color=colours(i), marker=MARKERS.get(r.level, "o"),
                           s=50, label=f"{encoder}, L{r.level}")
    chances = [r.chance for r in rows if r.chance is not None]
    if chances:
        chance = max(chances)
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="identity chance")
        ax.scatter([100.0], [chance], marker="*", s=250, color="gold", edgecolor="black", zorder=5,
                   label="ideal (100% action, chance identity)")
    ax.set_xlabel("action top-1 (%)")
    ax.set_ylabel("fresh attacker identity top-1 (%)")
    ax.set_xlim(0, 105)
    ax.set_ylim(0, 105)
    ax.set_title("Privacy-utility trade-off (lower right is better)")
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(output / "tradeoff.png", dpi=PLOT_DPI)
    plt.close(fig)


def _csv_list(text: str, cast) -> list:
    return [cast(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Encoder x LPS-level privacy-utility grid.")
    parser.add_argument("--config", default=None, help="experiment YAML (default: configs/demo.yaml)")
    parser.add_argument("--output", required=True, help="folder of the runs and the table")
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--attacker", default=FRAME_ATTACKER, choices=tuple(FRAME_ATTACKERS) + VIDEO_ATTACKERS,
                        help="fresh attacker of every cell: a frame attacker, or a video attacker on whole "
                             "clips (temporal, r3d_18, r2plus1d_18: STPrivacy's video-level protocol)")
    parser.add_argument("--quick", action="store_true", help="few epochs: the synthetic grid in < 30 min on 2 cores")
    parser.add_argument("--collect", action="store_true", help="only gather finished runs")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides for every run")
    args = parser.parse_args(argv)
    args.encoders = _csv_list(args.encoders, str)
    args.levels = _csv_list(args.levels, int)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    setup_logging(str(output))
    try:
        for encoder in args.encoders:
            if encoder not in ENCODERS:
                raise UserError(f"--encoders: {encoder!r} is not one of {', '.join(ENCODERS)}")
        for level in args.levels:
            if level not in LEVELS:
                raise UserError(f"--levels: {level} is not one of {', '.join(map(str, LEVELS))}")
        load_config(args.config, args.opts)  # fail early on a bad config or override
        start = time.time()
        rows = run_grid(args, output)
    except UserError as exc:
        logger.error("%s", exc)
        return 2
    write_table(rows, output)
    write_plot(rows, output)
    logger.info("trade-off of %d rows written to %s (%.0f s)", len(rows), output, time.time() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
