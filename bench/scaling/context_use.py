"""How much of its context each run of an IsoFLOP study uses: the validation loss by position in the context, and
the loss on a random token sequence shown twice (second copy vs first).

    python -m bench.scaling.context_use --experiments runs/isoflop-study/api/experiments \\
        --valid runs/linux-data/valid.npy --out runs/isoflop-study/context

Why: a model that has learnt to copy from its context (induction heads, Olsson et al. 2022) predicts the second
copy of a random sequence almost exactly and gains most at late positions of real text; one that has not predicts
the second copy no better than the first (~ln vocab). The study's predicted run fell far below the loss its sweep's
law gave it; if it learnt to copy and no sweep run did, the law (fitted on runs without that ability) could not
foresee it. Each experiment is a ``train`` run directory of the training API (``<id>/checkpoint.pt``).

Writes ``<out>/context.md`` (the table), ``<out>/context.png`` (loss by position, one curve per run) and
``<out>/context.json`` (the curves).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from bench.scaling.isoflop_study import parameter_count
from impl.programs.checkpoints import load_run_checkpoint
from impl.programs.cli import ArgumentParser, UserError, positive_int, run
from impl.programs.config import TrainConfig, build_model, resolve_device
from impl.programs.files import atomic_write_text

POSITION_BANDS = ((0, 16), (16, 64), (64, 256), (256, 1024))  # [low, high) positions; past the context: blank


def load_model(checkpoint_path: Path, device: str):
    checkpoint = load_run_checkpoint(checkpoint_path)
    cfg = TrainConfig(**{**checkpoint["config"], "device": device, "kernels": "none"})
    model = build_model(cfg)
    model.load_state_dict(checkpoint["model"])
    tokens_seen = checkpoint["iteration"] * cfg.batch_size * cfg.context_length
    return model.to(device).eval(), cfg, tokens_seen


def position_losses(model, windows):
    """Mean cross-entropy at each position of the context over the windows (n, context_length + 1)."""
    import torch
    import torch.nn.functional as F

    total = None
    for batch in windows.split(16):
        with torch.no_grad(), torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=batch.is_cuda):
            logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.float().transpose(1, 2), batch[:, 1:], reduction="none").sum(0)
        total = loss if total is None else total + loss
    return (total / len(windows)).cpu()


def copy_losses(model, vocab_size: int, half: int, sequences: int, device: str) -> tuple[float, float]:
    """Mean loss on the first and on the second copy of random token sequences of ``half`` tokens shown twice."""
    import torch

    generator = torch.Generator().manual_seed(0)
    first = torch.randint(0, vocab_size, (sequences, half), generator=generator)
    windows = torch.cat([first, first], dim=1).to(device)
    losses = position_losses(model, windows)  # position p predicts token p + 1
    return losses[:half - 1].mean().item(), losses[half:].mean().item()


def study(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    device = resolve_device(args.device)
    checkpoints = sorted(args.experiments.glob("*/checkpoint.pt"), key=lambda path: int(path.parent.name))
    if not checkpoints:
        raise UserError(f"--experiments {args.experiments}: no <id>/checkpoint.pt there")
    valid = np.load(args.valid, mmap_mode="r")
    rows, curves = [], []
    for path in checkpoints:
        model, cfg, tokens_seen = load_model(path, device)
        context = cfg.context_length
        count = min(args.windows, (len(valid) - 1) // context)
        windows = np.stack([valid[i * context:(i + 1) * context + 1] for i in range(count)]).astype(np.int64)
        windows = torch.from_numpy(windows).to(device)  # the split's first windows, each with its next token
        losses = position_losses(model, windows)
        bands = [losses[low:min(high, context)].mean().item() if low < context else math.nan
                 for low, high in POSITION_BANDS]
        first, second = copy_losses(model, cfg.vocab_size, context // 2, args.windows, device)
        parameters = parameter_count(cfg.num_layers, cfg.d_model, cfg.vocab_size, "matmul")  # the study's N
        rows.append((path.parent.name, cfg.num_layers, cfg.d_model, parameters, tokens_seen, losses.mean().item(),
                     *bands, first, second))
        curves.append(dict(experiment=path.parent.name, label=f"{cfg.num_layers}L d{cfg.d_model}, "
                                                               f"{tokens_seen / 1e6:.1f}M tokens",
                           compute=6 * parameters * tokens_seen, losses=losses.tolist()))
        print(f"experiment {path.parent.name}: {cfg.num_layers} layers d_model {cfg.d_model}, loss "
              f"{losses.mean().item():.3f}, copy {first:.2f} -> {second:.2f}", flush=True)
    band_names = [f"pos {low}-{high - 1}" for low, high in POSITION_BANDS]
    header = ["experiment", "layers", "d_model", "N", "tokens", "valid loss", *band_names,
              "random, 1st copy", "random, 2nd copy"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, layers, width, parameters, tokens, *losses in rows:
        lines.append(f"| {name} | {layers} | {width} | {parameters:,} | {tokens:,} | "
                     + " | ".join("" if math.isnan(value) else f"{value:.3f}" for value in losses) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "context.md", "\n".join(lines) + "\n")
    atomic_write_text(args.out / "context.json", json.dumps(curves))  # to draw the plot again
    plot(curves, args.out / "context.png")
    print("\n".join(lines))
    print(f"wrote {args.out}/{{context.md,context.png,context.json}}")
    return 0


def plot(curves, path: Path) -> None:
    """One curve per run, its losses averaged over log-spaced bins of positions (one position's mean over the
    windows is noisy), coloured by the run's training compute 6·N·D."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axes = plt.subplots(figsize=(9, 5.5))
    computes = np.log10([curve["compute"] for curve in curves])
    norm = matplotlib.colors.Normalize(computes.min(), computes.max() if computes.max() > computes.min() else
                                       computes.min() + 1)
    for curve, compute in zip(curves, computes):
        losses = np.asarray(curve["losses"])
        edges = np.unique(np.geomspace(1, len(losses) + 1, 40).astype(int))  # 1-based positions, [edge, next)
        centres = np.sqrt(edges[:-1] * (edges[1:] - 1))
        means = [losses[low - 1:high - 1].mean() for low, high in zip(edges[:-1], edges[1:])]
        axes.plot(centres, means, color=plt.cm.viridis(norm(compute)), linewidth=1.2)
    best = min(curves, key=lambda curve: float(np.mean(curve["losses"][-32:])))
    axes.annotate(best["label"], (len(best["losses"]), float(np.mean(best["losses"][-32:]))), fontsize=8,
                  ha="right", va="bottom")
    figure.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes,
                    label="training compute, log10 FLOPs (6·N·D)")
    axes.set(xscale="log", xlabel="position in the context (tokens)", ylabel="validation loss (nats)",
             title="Loss by position: a run that copies from its context keeps falling at late positions")
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser("context-use", "Loss by position and on repeated random tokens, per study run.")
    parser.add_argument("--experiments", type=Path, required=True, help="the training API's experiments/ directory")
    parser.add_argument("--valid", type=Path, required=True, help="the validation split's token array (.npy)")
    parser.add_argument("--out", type=Path, required=True, help="directory for context.md and context.png")
    parser.add_argument("--windows", type=positive_int, default=256, help="context windows (and random sequences)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (auto: cuda when available)")
    return run(parser, argv, study)


if __name__ == "__main__":
    sys.exit(main())
