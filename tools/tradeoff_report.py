"""The trade-off table of :mod:`tools.tradeoff`: its rows, ``tradeoff.csv``, ``tradeoff.md`` and
``tradeoff.png`` (action top-1 against the fresh attacker's identity top-1; the ideal corner is
full action accuracy at chance identity accuracy)."""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path

from utils.misc import atomic_write, atomic_write_text

FRAMES_ROW = "camera frames"  # the encoder column of the attacks on the camera's own frames
PLOT_DPI = 150
FIGURE_SIZE = (7.0, 5.0)
MARKERS = {"film": "o", "lensless": "s", "coded_aperture": "^"}
COLUMNS = (  # markdown header, Row field
    ("input", "encoder"), ("camera", "device"), ("level", "level"), ("attack", "attack"),
    ("restore", "restore"), ("action top-1 (MSPNet)", "acc1"), ("action top-1 (fresh 3D CNN)", "utility_acc1"),
    ("id head top-1", "head_id_acc1"), ("attacker id top-1", "attack_id_acc1"),
    ("attacker id top-5", "attack_id_acc5"), ("attribute cMAP", "attack_cmap"), ("PSNR dB", "psnr"),
    ("SSIM", "ssim"), ("id chance", "chance"), ("note", "note"))


@dataclass
class Row:
    """One line of the trade-off table (accuracies in percent; None = not measured).

    Args:
        encoder: input encoder (``spp+<encoder>`` on SPP frames), or ``camera frames``.
        device: the privacy camera: film | lensless | coded_aperture.
        level: its privacy level (film layers; 0 = no film).
        attack: what the attacker read and which attacker it was (``planes resnet18``, ...).
        restore: the reconstruction before a frame attack (none | wiener | admm_tv | learned ...).
        acc1: action top-1 of the trained MSPNet.
        utility_acc1: action top-1 of the fresh utility model on the encoder's output.
        head_id_acc1: identity top-1 of the co-trained identity head.
        attack_id_acc1: identity top-1 of the fresh attacker on held-out videos.
        attack_id_acc5: its top-5.
        attack_cmap: the attribute attacker's cMAP (datasets with attributes).
        psnr: PSNR of the attacked frames against the clean ones (frame rows).
        ssim: their SSIM.
        chance: identity chance level.
        run: the run folder.
        note: why a value is missing.
    """

    encoder: str
    device: str
    level: int
    attack: str
    restore: str = "none"
    acc1: float | None = None
    utility_acc1: float | None = None
    head_id_acc1: float | None = None
    attack_id_acc1: float | None = None
    attack_id_acc5: float | None = None
    attack_cmap: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    chance: float | None = None
    run: str = ""
    note: str = field(default="")


def _fmt(value: float | int | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 1 or value == 0 else f"{value:.3f}"
    return str(value)


def write_table(rows: list[Row], output: Path) -> None:
    """Writes ``tradeoff.csv`` (every field) and ``tradeoff.md`` (the :data:`COLUMNS`)."""
    fields = list(Row.__dataclass_fields__)

    def write_csv(f) -> None:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))

    atomic_write(output / "tradeoff.csv", write_csv)
    lines = ["| " + " | ".join(title for title, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(getattr(row, name)) for _, name in COLUMNS) + " |")
    atomic_write_text(output / "tradeoff.md", "\n".join(lines) + "\n")


def write_plot(rows: list[Row], output: Path) -> None:
    """Writes ``tradeoff.png``: MSPNet action top-1 (x) against the fresh frame attacker's identity
    top-1 on the model input (y), one colour per encoder, one marker per camera."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the headless backend

    fig, ax = plt.subplots(figsize=FIGURE_SIZE)
    colours = plt.get_cmap("tab10")
    encoders = sorted({r.encoder for r in rows if r.encoder != FRAMES_ROW})
    for i, encoder in enumerate(encoders):
        for r in rows:
            if r.encoder == encoder and r.attack.startswith("planes") and r.acc1 is not None \
                    and r.attack_id_acc1 is not None and r.attack == _first_planes_attack(rows):
                ax.scatter(r.acc1, r.attack_id_acc1, color=colours(i % 10), marker=MARKERS.get(r.device, "o"),
                           s=20 + 20 * r.level, label=f"{encoder}, {r.device} L{r.level}")
    chances = [r.chance for r in rows if r.chance is not None]
    if chances:
        chance = max(chances)
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="identity chance")
        ax.scatter([100.0], [chance], marker="*", s=250, color="gold", edgecolor="black", zorder=5,
                   label="ideal (100% action, chance identity)")
    ax.set_xlabel("action top-1 of MSPNet (%)")
    ax.set_ylabel("fresh attacker identity top-1 on the model input (%)")
    ax.set_xlim(0, 105)
    ax.set_ylim(0, 105)
    ax.set_title("Privacy-utility trade-off (lower right is better)")
    ax.legend(fontsize=5, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(output / "tradeoff.png", dpi=PLOT_DPI)
    plt.close(fig)


def _first_planes_attack(rows: list[Row]) -> str:
    """The frame attacker's planes attack (the plot's y axis), e.g. ``planes resnet18``."""
    return next((r.attack for r in rows if r.attack.startswith("planes")), "")
