"""End-to-end benchmarking of a Transformer LM, the A2 §2.1.3 script (memory: §2.1.6).

    python -m bench.train.a2_benchmark                                  # Table 1 sizes, fp32 and bf16, eager
    python -m bench.train.a2_benchmark --sizes xl --precision bf16 --compile off,on
    python -m bench.train.a2_benchmark --sizes xl --precision bf16 --memory-snapshot reports/snapshots
    python -m bench.train.a2_benchmark --tiny                           # on a CPU, in seconds
    python -m bench.train.a2_benchmark --tiny --impl mypkg              # yours: TransformerLM, AdamW, cross_entropy

impl.nn.TransformerLM (with ``--impl``, the implementation's own in the row before) with random weights
on a random batch (A2 §2.1.2: vocab 10K, batch 4, context 512). Three phases, each with its own warm-up:
forward (the training forward, loss included, autograd recording), forward+backward, and the full step
with the implementation's AdamW. Each timed step is read with timeit.default_timer between
torch.cuda.synchronize() calls, so the GPU's work is inside it; the table gives mean ± std over the
timed steps, and the peak memory of each phase (torch.cuda.max_memory_allocated: weights, gradients
and optimizer state included). A configuration that runs out of memory reads OOM in the phases it
failed and the run goes on; one whose implementation lacks a component (or gives no gradients, as
course adapters) reads why, once.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

import impl
from bench.common import ComponentMissing, add_impl_argument, autocast, fmt, free_memory, peak_memory_gib, report, \
    reset_peak_memory, tested_implementation, timed, trainable, write_report, yours

VOCAB = 10_000
SIZES = {  # A2 Table 1, 2026 handout: d_model, d_ff, num_layers, num_heads
    "small": (768, 3072, 12, 12),
    "medium": (1024, 4096, 24, 16),
    "large": (1280, 5120, 36, 20),
    "xl": (2560, 10240, 32, 32),
    "10B": (4608, 12288, 50, 36),
    # The 2025 handout's Table 1 differs in two names: its xl, and its 2.7B (the 2026 xl).
    "xl-2025": (1600, 6400, 48, 25),
    "2.7B": (2560, 10240, 32, 32),
    "tiny": (64, 128, 2, 4),  # for tests on a CPU
}
PHASES = ("forward", "forward+backward", "full step")
HEADER = ["size", "implementation", "params", "precision", "compile", *(f"{p} (ms)" for p in PHASES),
          *(f"peak memory, {p} (GiB)" for p in PHASES)]
OOM = "OOM"


def measure(fn, device: torch.device, warmup: int, steps: int, snapshot: Path | None) -> tuple[str, str]:
    """(mean ± std ms, peak GiB) of ``fn`` after ``warmup`` untimed calls; OOM for both if memory runs out."""
    try:
        reset_peak_memory(device)
        for _ in range(warmup):
            fn()
        if snapshot is not None:  # after the warm-up: the timeline shows steady steps (A2 §2.1.6)
            torch.cuda.memory._record_memory_history(max_entries=1_000_000)
        times = [1000 * timed(fn, device) for _ in range(steps)]
        if snapshot is not None:
            torch.cuda.memory._dump_snapshot(str(snapshot))
    except torch.OutOfMemoryError:
        return OOM, OOM
    finally:
        if snapshot is not None:
            torch.cuda.memory._record_memory_history(enabled=None)
    std = statistics.stdev(times) if len(times) > 1 else 0.0
    return f"{statistics.mean(times):.2f} ± {std:.2f}", fmt(peak_memory_gib(device), ".2f")


def benchmark(size: str, precision: str, compile: bool, args: argparse.Namespace, device: torch.device,
              snapshot_dir: Path | None, bundle=impl, label: str = "ours") -> list[str]:
    """One table row: the three phases of one model size, precision and compile setting, for ``bundle``'s
    TransformerLM, AdamW and cross_entropy (a row saying why where it lacks one)."""
    d_model, d_ff, num_layers, num_heads = SIZES[size]
    shape = (VOCAB, args.context, d_model, num_layers, num_heads, d_ff)
    n_params = sum(p.numel() for p in impl.TransformerLM(*shape, device="meta").parameters())  # counted, no memory
    row = [size, label, f"{n_params / 1e6:,.1f}M", precision, "on" if compile else "off"]
    try:
        TransformerLM, AdamW, cross_entropy = trainable(bundle, "TransformerLM"), bundle.AdamW, bundle.cross_entropy
    except ComponentMissing as missing:
        return row + [str(missing)] + [""] * (2 * len(PHASES) - 1)
    try:
        model = TransformerLM(*shape, device=device)
        optimizer = AdamW(model.parameters())
    except torch.OutOfMemoryError:
        free_memory(device)
        return row + [OOM] * 2 * len(PHASES)
    forward = torch.compile(model) if compile else model
    x, y = (torch.randint(0, VOCAB, (args.batch, args.context), device=device) for _ in range(2))

    def loss() -> torch.Tensor:
        with autocast(device, precision):
            return cross_entropy(forward(x), y)

    def forward_backward() -> None:
        loss().backward()
        optimizer.zero_grad(set_to_none=True)  # the next step starts from no gradients, as a training step

    def full_step() -> None:
        loss().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times, peaks = [], []
    for phase, fn in zip(PHASES, (loss, forward_backward, full_step)):
        snapshot = None
        if snapshot_dir is not None:
            tag = f"{size}-{precision}-compile_{row[4]}-{phase.replace('+', '_').replace(' ', '_')}"
            snapshot = snapshot_dir / f"{tag}.pickle"
        t, peak = measure(fn, device, args.warmup, args.steps, snapshot)
        times.append(t)
        peaks.append(peak)
        if t == OOM:
            optimizer.zero_grad(set_to_none=True)
            free_memory(device)
    del model, optimizer, forward
    free_memory(device)
    return row + times + peaks


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.train.a2_benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="small,medium,large,xl", help=f"comma-separated, from {', '.join(SIZES)}")
    parser.add_argument("--context", type=int, default=512, help="context length (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=4, help="batch size (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each phase (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per phase (default: %(default)s)")
    parser.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16 (autocast)")
    parser.add_argument("--compile", default="off", help="comma-separated: off, on (torch.compile the model)")
    parser.add_argument("--memory-snapshot", type=Path, metavar="DIR",
                        help="CUDA only: record the timed steps of the first configuration, one pickle per phase, "
                             "for pytorch.org/memory_viz (the recorder slows that row down)")
    add_impl_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("reports/a2_benchmark.md"))
    parser.add_argument("--tiny", action="store_true",
                        help="tiny model, context 16, batch 2, 1 warm-up + 2 steps: for CPU tests")
    args = parser.parse_args(argv)
    if args.tiny:
        args.sizes, args.context, args.batch, args.warmup, args.steps = "tiny", 16, 2, 1, 2
    for option, allowed in (("sizes", SIZES), ("precision", ("fp32", "bf16")), ("compile", ("off", "on"))):
        unknown = [v for v in getattr(args, option).split(",") if v not in allowed]
        if unknown:
            parser.error(f"--{option.replace('_', '-')}: unknown {unknown}, choose from {list(allowed)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    snapshot_dir = args.memory_snapshot
    if snapshot_dir is not None and device.type != "cuda":
        print("a2_benchmark: --memory-snapshot needs CUDA; no snapshot taken", file=sys.stderr)
        snapshot_dir = None
    if snapshot_dir is not None:
        snapshot_dir.mkdir(parents=True, exist_ok=True)
    tested = tested_implementation(args.impl)
    contenders = ([(tested, yours(tested, "its TransformerLM"))] if tested is not None else []) + [(impl, "ours")]
    rows = []
    for size in args.sizes.split(","):
        for precision in args.precision.split(","):
            for compile in args.compile.split(","):
                for bundle, label in contenders:
                    rows.append(benchmark(size, precision, compile == "on", args, device, snapshot_dir, bundle, label))
                    snapshot_dir = None  # one configuration only: a snapshot of every row would be large and slow
    notes = [f"vocab {VOCAB}, batch {args.batch}, context {args.context}; {args.warmup} warm-up steps per phase, "
             f"then mean ± std over {args.steps} timed steps",
             "forward includes the loss and records autograd; backward ≈ (forward+backward) − forward; "
             "full step adds the implementation's AdamW (ours: impl.train.AdamW)"]
    if tested is not None:
        notes.append(f"yours: --impl {args.impl} ({tested.name}): its TransformerLM, AdamW and cross_entropy")
    title = "A2 §2.1.3 end-to-end benchmark: " + ("yours and " if tested else "") + "impl.nn.TransformerLM"
    write_report(report(title,
                        "python -m bench.train.a2_benchmark",
                        argv, device, notes, HEADER, rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
