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
