"""Privacy-utility trade-off: a grid of input encoders x privacy cameras, trained and attacked.

Cameras are the film at ``--levels`` (0 = the synthetic set's raw copy, L = its copy generated
through L layers, ``DATA.SYNTHETIC.LPS_LEVEL``) and the other simulated cameras of ``--devices``
(lensless, coded_aperture) at ``--device-levels``, applied on the fly to the raw copy
(``LPS.DEVICE``, ``LPS.LEVEL``). For each cell (encoder E, camera C) the tool

1. trains the action model (``main.py`` in a subprocess) with ``MODEL.ENCODER E`` on C's data;
2. trains a fresh utility model (:mod:`tools.utility_model`, a 3D CNN from scratch) on the
   encoder's frozen output, for the actions (``--utility-arch``; ``none`` skips it);
3. trains fresh identity attackers (:mod:`tools.privacy_attack`, ``--target planes``) on what
   the model sees: a frame attacker (``--attacker``) and a video attacker (``--video-attacker``),
   and, where the sample names carry appearance attributes (P3AR-PKU), an attribute attacker
   whose cMAP is reported;

and, once per camera, attacks the camera's frames themselves (``--target frames``) as they are
and after the adversary's reconstruction with the known PSF (film: Wiener and Richardson-Lucy;
lensless and coded aperture: ADMM-TV) and, on the film, by a learned restorer
(:mod:`tools.train_restorer`, ``--restorer-arch``; one network trained once on the benchmark's
training videos at every film level of the grid, the attack on its validation videos), reporting
the attacked frames' PSNR / SSIM against the clean ones. ``--spp-encoders rgb,...`` adds cells trained and
attacked on Selective Privacy Preservation frames (rows ``spp+<encoder>``; pass the DINO weights
and templates with ``--opts SPP.WEIGHTS F SPP.TEMPLATES T``).

It writes ``tradeoff.csv``, ``tradeoff.md`` and ``tradeoff.png`` (:mod:`tools.tradeoff_report`).
Finished runs are reused: a cell whose ``metrics.json`` / ``utility.json`` / ``privacy.json``
exists is not run again, so an interrupted grid resumes where it stopped; ``--collect`` only
gathers. ``--quick`` runs the grid with short schedules on the synthetic set.
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from datasets.names import DATASET_LABELS
from datasets.optics import CAMERAS
from datasets.restore import RESTORE_METHODS
from models import ENCODERS
from privacy import FRAME_ATTACKERS, VIDEO_ATTACKERS
from models.restorers import RESTORER_ARCHS
from tools import privacy_attack, train_restorer, utility_model
from tools.tradeoff_report import FRAMES_ROW, Row, write_plot, write_table
from utils.config import load_config
from utils.errors import UserError
from utils.logger import setup_logging
from utils.paths import PROJECT_ROOT

logger = logging.getLogger(__name__)

LEVELS = (0, 1, 2, 3)
QUICK_LEVELS = (0, 2)  # --quick: film levels when --levels is not given (no film, and the demo's level)
OTHER_DEVICES = tuple(d for d in CAMERAS if d != "film")
DEVICE_LEVELS = (2,)
QUICK_TRAIN_EPOCHS = 5  # --quick: action-model epochs per cell (tested once, after the last)
QUICK_ATTACK_EPOCHS = 2  # --quick: attacker epochs
QUICK_UTILITY_EPOCHS = 2  # --quick: fresh utility model epochs
QUICK_UTILITY_CAMERAS = ("l2",)  # --quick: cameras whose cells train the utility model (the demo's film)
QUICK_ATTACK_VIDEOS = 20  # --quick: attacker videos per identity in each half
QUICK_OPTS = ("TRAIN.WARMUP_EPOCHS", "1", "TEST.NUM_CLIP", "1", "SAVE_FREQ", "1000", "EVAL_FREQ", "1000")
FRAME_ATTACKER = "resnet18"
VIDEO_ATTACKER = "r3d_18"
UTILITY_ARCH = "r3d_18"
RESTORER_ARCH = "restormer"
RESTORER_DIR = "restorer"  # the grid's learned restorer, beside the cells
QUICK_RESTORER_OPTS = ("--epochs", "1", "--max-val-videos", "100")  # --quick: the restorer's budget
SPP_PREFIX = "spp+"  # the encoder column of the cells on Selective Privacy Preservation frames
CHECKPOINTS = ("best.pth", "last.pth")
ATTRIBUTES = "attributes"  # privacy_attack --label of all the attributes at once
# the adversary's known-PSF reconstructions of each camera's frames (methods of datasets/restore.py)
KNOWN_PSF = {"film": ("wiener", "richardson_lucy"), "lensless": ("admm_tv",), "coded_aperture": ("admm_tv",)}


@dataclass(frozen=True)
class Camera:
    """A privacy camera of the grid.

    Args:
        device: film | lensless | coded_aperture.
        level: its privacy level (film: layers, 0 = the raw copy).
    """

    device: str
    level: int

    @property
    def slug(self) -> str:
        """The run-folder suffix (``l2``; ``lensless_l2``)."""
        return f"l{self.level}" if self.device == "film" else f"{self.device}_l{self.level}"

    def opts(self) -> list[str]:
        """Config overrides that select this camera's data."""
        if self.device == "film":
            if self.level == 0:
                return ["DATA.SYNTHETIC.SOURCE", "raw"]
            return ["DATA.SYNTHETIC.SOURCE", "lps", "DATA.SYNTHETIC.LPS_LEVEL", str(self.level)]
        return ["DATA.SYNTHETIC.SOURCE", "raw", "LPS.DEVICE", self.device, "LPS.LEVEL", str(self.level)]

    def restores(self, learned: bool) -> list[str]:
        """The frame attacks' reconstructions: none, the known-PSF methods the tool has, and on the
        film the learned restorer when ``learned``."""
        known = [m for m in KNOWN_PSF[self.device] if m in RESTORE_METHODS] if self.level else []
        return ["none", *known, *(["learned"] if learned and self.level and self.device == "film" else [])]


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


def _tool_cell(tool: ModuleType, result: Path, config: str | None, opts: list[str],
               extra: list[str]) -> dict | None:
    """Runs ``tool.main(argv)`` (looked up at the call: tests patch it) in this process unless its
    ``result`` exists; its JSON."""
    if not result.is_file():
        argv = ["--output", str(result.parent), *extra]
        if config:
            argv += ["--config", config]
        argv += ["--opts", *opts]
        logger.info("%s: %s", tool.__name__, " ".join(argv))
        if tool.main(argv) != 0:
            logger.error("%s failed, see %s", tool.__name__, result.parent / "log.txt")
    return _read_json(result)


def attack_cell(config: str | None, out_dir: Path, opts: list[str], extra: list[str]) -> dict | None:
    """:mod:`tools.privacy_attack` into ``out_dir`` (reused when its privacy.json exists)."""
    return _tool_cell(privacy_attack, out_dir / "privacy.json", config, opts, extra)


def utility_cell(config: str | None, out_dir: Path, opts: list[str], extra: list[str]) -> dict | None:
    """:mod:`tools.utility_model` into ``out_dir`` (reused when its utility.json exists)."""
    return _tool_cell(utility_model, out_dir / utility_model.RESULT_NAME, config, opts, extra)


def restorer_cell(args: argparse.Namespace, output: Path) -> str:
    """Trains the grid's learned restorer at every film level of ``args.cameras`` (resumed when
    interrupted, reused when finished); its checkpoint, or "" when there is none."""
    levels = sorted({c.level for c in args.cameras if c.device == "film" and c.level})
    folder = output / RESTORER_DIR
    checkpoint = folder / CHECKPOINTS[1]
    if args.restorer_arch == "none" or not levels:
        return ""
    if not args.collect:
        extra = ["--arch", args.restorer_arch, "--levels", *map(str, levels), *args.restorer_extra,
                 *(["--resume"] if checkpoint.is_file() else [])]
        _tool_cell(train_restorer, folder / "restorer.json", args.config, list(args.opts), extra)
        setup_logging(str(output))
    return str(checkpoint) if (folder / "restorer.json").is_file() else ""


def _checkpoint(run_dir: Path) -> list[str]:
    for name in CHECKPOINTS:
        if (run_dir / name).is_file():
            return ["--resume", str(run_dir / name)]
    return []


def _fill(row: Row, privacy: dict | None) -> None:
    if privacy is None:
        row.note = row.note or "attack missing or failed"
        return
    row.attack_id_acc1, row.attack_id_acc5 = privacy.get("id_acc1"), privacy.get("id_acc5")
    row.chance = privacy.get("chance")
    row.psnr, row.ssim = privacy.get("psnr"), privacy.get("ssim")


def _cells(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """(row name, MODEL.ENCODER, extra opts) of every encoder cell."""
    cells = [(encoder, encoder, []) for encoder in args.encoders]
    return cells + [(SPP_PREFIX + encoder, encoder, ["SPP.ENABLED", "True"]) for encoder in args.spp_encoders]


def encoder_rows(args: argparse.Namespace, output: Path, camera: Camera, name: str, opts: list[str],
                 attributes: bool) -> list[Row]:
    """Trains (or reads) one encoder cell and its attacks; its rows."""
    run_dir = output / f"{name.replace(SPP_PREFIX, 'spp_')}_{camera.slug}"
    base = Row(encoder=name, device=camera.device, level=camera.level, attack="", run=str(run_dir))
    if not args.collect:
        train_cell(args.config, run_dir, opts)
        setup_logging(str(output))
    metrics = _read_json(run_dir / "metrics.json")
    if metrics is None:
        base.attack, base.note = f"planes {args.attacker}", "training missing or failed"
        return [base]
    base.acc1, base.head_id_acc1 = metrics.get("acc1"), metrics.get("id_acc1")
    resume = _checkpoint(run_dir)

    def run(tool, folder: str, extra: list[str]) -> dict | None:
        if args.collect:
            return _read_json(run_dir / folder / ("utility.json" if tool is utility_cell else "privacy.json"))
        result = tool(args.config, run_dir / folder, opts, [*extra, *resume])
        setup_logging(str(output))  # the tool pointed the log at its own folder
        return result

    if args.utility_arch != "none" and (args.utility_cameras is None or camera.slug in args.utility_cameras):
        utility = run(utility_cell, "utility", ["--arch", args.utility_arch, *args.utility_extra])
        base.utility_acc1 = utility.get("acc1") if utility else None
    rows = []
    attackers = [args.attacker] + ([args.video_attacker] if args.video_attacker != "none" else [])
    for attacker in attackers:
        folder = "attack_planes" if attacker == args.attacker else f"attack_planes_{attacker}"
        row = Row(**{**base.__dict__, "attack": f"planes {attacker}"})
        _fill(row, run(attack_cell, folder, ["--target", "planes", "--attacker", attacker, *args.attack_extra]))
        rows.append(row)
    if attributes:
        privacy = run(attack_cell, "attack_planes_attributes", ["--target", "planes", "--attacker", args.attacker,
                                                                "--label", ATTRIBUTES, *args.attack_extra])
        rows[0].attack_cmap = privacy.get("cmap") if privacy else None
    return rows


def frame_rows(args: argparse.Namespace, output: Path, camera: Camera, restorer: str) -> list[Row]:
    """The attacks on the camera's own frames, as recorded and reconstructed (``restorer``: the
    learned restorer's checkpoint, "" = none); their rows."""
    rows = []
    for restore in camera.restores(learned=args.restorer_arch != "none"):
        name = f"frames_{camera.slug}_{restore}"
        attack_dir = output / name
        opts = [*camera.opts(), *args.opts]
        row = Row(encoder=FRAMES_ROW, device=camera.device, level=camera.level, attack=f"frames {args.attacker}",
                  restore=restore, run=str(attack_dir))
        if restore == "learned" and not restorer:
            row.note = "restorer missing or failed"
        elif args.collect:
            _fill(row, _read_json(attack_dir / "privacy.json"))
        else:
            learned = ["--restorer", restorer] if restore == "learned" else []
            _fill(row, attack_cell(args.config, attack_dir, opts, ["--target", "frames", "--attacker", args.attacker,
                                                                   "--restore", restore, *learned, *args.attack_extra]))
            setup_logging(str(output))
        rows.append(row)
    return rows


def run_grid(args: argparse.Namespace, output: Path) -> list[Row]:
    """Runs (or, with ``--collect``, only reads) every cell; returns the table rows."""
    cfg = load_config(args.config, args.opts)
    attributes = "gender" in DATASET_LABELS[cfg.DATA.DATASET]  # the names carry appearance attributes
    train_extra = [str(v) for v in args.opts]
    if args.quick:
        train_extra = ["TRAIN.EPOCHS", str(QUICK_TRAIN_EPOCHS), *QUICK_OPTS, *train_extra]
    rows = []
    restorer = restorer_cell(args, output)
    for camera in args.cameras:
        for name, encoder, cell_opts in _cells(args):
            opts = ["MODEL.ENCODER", encoder, *camera.opts(), *cell_opts, *train_extra]
            rows += encoder_rows(args, output, camera, name, opts, attributes)
        rows += frame_rows(args, output, camera, restorer)
    return rows


def _csv_list(text: str, cast) -> list:
    return [cast(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The tool's command line (``argv`` None = ``sys.argv``)."""
    parser = argparse.ArgumentParser(description="Encoder x privacy-camera privacy-utility grid.")
    parser.add_argument("--config", default=None, help="experiment YAML (default: configs/demo.yaml)")
    parser.add_argument("--output", required=True, help="folder of the runs and the table")
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--spp-encoders", default="", help="encoders also trained on SPP frames (e.g. rgb)")
    parser.add_argument("--levels", default=None,
                        help=f"film levels (0 = no film; default {','.join(map(str, LEVELS))}, "
                             f"with --quick {','.join(map(str, QUICK_LEVELS))})")
    parser.add_argument("--devices", default=",".join(OTHER_DEVICES), help="other cameras ('' = none)")
    parser.add_argument("--device-levels", default=",".join(map(str, DEVICE_LEVELS)))
    parser.add_argument("--attacker", default=FRAME_ATTACKER, choices=tuple(FRAME_ATTACKERS))
    parser.add_argument("--video-attacker", default=VIDEO_ATTACKER, choices=VIDEO_ATTACKERS + ("none",))
    parser.add_argument("--utility-arch", default=UTILITY_ARCH, choices=VIDEO_ATTACKERS + ("none",),
                        help="the fresh utility model ('none' skips it)")
    parser.add_argument("--utility-cameras", default=None,
                        help="cameras (run-folder suffixes: l0, l2, lensless_l2, ...) whose cells train the utility "
                             f"model (default: all; with --quick {','.join(QUICK_UTILITY_CAMERAS)})")
    parser.add_argument("--restorer-arch", default=RESTORER_ARCH, choices=RESTORER_ARCHS + ("none",),
                        help="the learned restorer of the film's frame attacks ('none' skips it)")
    parser.add_argument("--quick", action="store_true", help="short schedules: the synthetic grid on 2 cores")
    parser.add_argument("--collect", action="store_true", help="only gather finished runs")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides for every run")
    args = parser.parse_args(argv)
    args.encoders = _csv_list(args.encoders, str)
    args.spp_encoders = _csv_list(args.spp_encoders, str)
    if args.levels is None:
        args.levels = ",".join(map(str, QUICK_LEVELS if args.quick else LEVELS))
    levels, devices, device_levels = (_csv_list(args.levels, int), _csv_list(args.devices, str),
                                      _csv_list(args.device_levels, int))
    args.cameras = [Camera("film", level) for level in levels] + [
        Camera(device, level) for device in devices for level in device_levels]
    args.attack_extra = ["--epochs", str(QUICK_ATTACK_EPOCHS), "--max-videos", str(QUICK_ATTACK_VIDEOS)] \
        if args.quick else []
    args.utility_extra = ["--epochs", str(QUICK_UTILITY_EPOCHS)] if args.quick else []
    if args.utility_cameras is None and args.quick:
        args.utility_cameras = ",".join(QUICK_UTILITY_CAMERAS)
    args.utility_cameras = None if args.utility_cameras is None else set(_csv_list(args.utility_cameras, str))
    args.restorer_extra = list(QUICK_RESTORER_OPTS) if args.quick else []
    return args


def _check(args: argparse.Namespace) -> None:
    for encoder in args.encoders + args.spp_encoders:
        if encoder not in ENCODERS:
            raise UserError(f"--encoders: {encoder!r} is not one of {', '.join(ENCODERS)}")
    for camera in args.cameras:
        if camera.device not in CAMERAS or camera.device == "film" and camera.level not in LEVELS \
                or camera.device != "film" and camera.level not in LEVELS[1:]:
            raise UserError(f"camera {camera.device} level {camera.level}: devices are {', '.join(CAMERAS)}, "
                            f"film levels {LEVELS}, other devices' levels {LEVELS[1:]}")
    cfg = load_config(args.config, args.opts)  # fail early on a bad config or override
    if args.spp_encoders and not (cfg.SPP.WEIGHTS and cfg.SPP.TEMPLATES) and not args.collect:
        raise UserError("--spp-encoders needs the DINO weights and templates of every SPP cell: pass "
                        "--opts SPP.WEIGHTS FILE.pth SPP.TEMPLATES FILE.pt")


def main(argv: list[str] | None = None) -> int:
    """Runs the grid and writes the table; returns the exit code (2 on a user error)."""
    args = parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    setup_logging(str(output))
    try:
        _check(args)
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
