"""What a training run leaves to read: metrics as JSON lines and a loss-curve plot (A1 §5.3).

One JSON object a line: ``step, tokens, wall_s, lr, train_loss, grad_norm, tokens_per_s`` at
every logging step, plus ``val_loss, val_perplexity`` on evaluation steps. A resumed run first
drops the rows after its checkpoint, so that the file reads as one uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path

from impl.programs.files import atomic_write, atomic_write_text


class MetricsLog:
    def __init__(self, path: Path, resume_from_step: int | None = None):
        self.path = path
        rows = self.read(path) if resume_from_step is not None and path.exists() else []
        self.rows = [row for row in rows if row["step"] <= (resume_from_step or 0)]
        atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in self.rows))

    @staticmethod
    def read(path: Path) -> list[dict]:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        rows = [json.loads(line) for line in lines[:-1]]
        try:
            rows += [json.loads(line) for line in lines[-1:]]
        except json.JSONDecodeError:
            pass  # the row a killed run was appending; it lies past the checkpoint and is dropped anyway
        return rows

    def append(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def plot_loss_curves(rows: list[dict], out: Path, title: str) -> None:
    """Train and validation loss against step and against wall-clock seconds, side by side."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on CI machines or GPU nodes
    import matplotlib.pyplot as plt

    train = [r for r in rows if "train_loss" in r]
    val = [r for r in rows if "val_loss" in r]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, x_key, x_label in ((axes[0], "step", "step"), (axes[1], "wall_s", "wall-clock (s)")):
        ax.plot([r[x_key] for r in train], [r["train_loss"] for r in train], label="train", linewidth=1)
        ax.plot([r[x_key] for r in val], [r["val_loss"] for r in val], "o-", label="validation", markersize=3)
        ax.set_xlabel(x_label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("cross-entropy (nats/token)")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(out) as file:
        fig.savefig(file, format="png", dpi=120)
    plt.close(fig)


def plot_metric_panels(rows: list[dict], panels: list[tuple[str, str]], out: Path, title: str) -> None:
    """One panel per (key, label) of ``rows`` present, against step (top row) and wall-clock seconds (bottom row);
    a key's ``_ci95`` (low, high) pairs, where rows have them, are drawn as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(key, label) for key, label in panels if any(key in r for r in rows)]
    if not panels:
        return
    fig, axes = plt.subplots(2, len(panels), figsize=(3.6 * len(panels), 6), squeeze=False)
    for column, (key, label) in enumerate(panels):
        points = [r for r in rows if key in r]
        for ax, x_key, x_label in ((axes[0][column], "step", "step"), (axes[1][column], "wall_s", "wall-clock (s)")):
            xs = [r[x_key] for r in points]
            ax.plot(xs, [r[key] for r in points], "o-" if len(points) < 30 else "-", markersize=3, linewidth=1)
            if all(f"{key}_ci95" in r for r in points):
                ax.fill_between(xs, [r[f"{key}_ci95"][0] for r in points], [r[f"{key}_ci95"][1] for r in points],
                                alpha=0.2, label="95% interval")
                ax.legend(fontsize=7)
            ax.set_xlabel(x_label)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(out) as file:
        fig.savefig(file, format="png", dpi=110)
    plt.close(fig)
