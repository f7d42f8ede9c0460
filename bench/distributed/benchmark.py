"""Distributed training against torch's own: all-reduce bandwidth, DDP variants, ZeRO and FSDP (A2 §5–§7).

    python -m bench.distributed.benchmark --nproc 2 --model xl   # two GPUs (2 × H200): all sections, + world size 1
    nox -s bench_distributed -- --nproc 2 --model xl             # the same through nox
    python -m bench.distributed.benchmark --nproc 1 --model xl   # one GPU: what our hooks, buckets, gathers cost
    python -m bench.distributed.benchmark --nproc 2 --model small --context 128 --batch 1 --warmup 1 --steps 3  # gloo
    python -m bench.distributed.benchmark --nproc 2 --model tiny # a CPU smoke run in about a minute (a test uses it)
    python -m bench.distributed.benchmark --sections allreduce --allreduce-mib 1,64,1024   # one section, chosen sizes
    python -m bench.distributed.benchmark --nproc 2 --impl mypkg # yours beside ours and torch's

One command for any number of GPUs: it starts ``--nproc`` ranks through torchrun
(``python -m torch.distributed.run --standalone``; the ranks run bench/distributed/worker.py, the setups
compared are in bench/distributed/setups.py), NCCL on CUDA (one GPU a rank) and gloo on a CPU, and when
``--nproc`` > 1 a second launch at world size 1 for the scaling baseline. Rank 0 hands the figures back; this process writes one markdown report (default
reports/distributed.md): the device, torch, the exact command, and against the goals:

- All-reduce of float32 tensors, 1 MiB…4 GiB: ``torch.distributed.all_reduce`` vs the path our DDP's buckets
  take; algbw = bytes / time, busbw = algbw · 2(n−1)/n (nccl-tests' convention). Goal: ours ≥ 0.95x.
- The full training step of impl.nn.TransformerLM (``--model xl``: the DDP problems' XL, d_model 1600, 48
  layers, context 512; fp32, per-rank batch 2) at the same per-rank batch under naive DDP (one all-reduce per parameter after
  backward), flat DDP (one all-reduce of all gradients), DDPIndividualParameters, DDPBucketed at 1, 10,
  100 and 1000 MB, and torch's DistributedDataParallel; every row steps our AdamW. Scaling efficiency =
  the one-process step without DDP ÷ the N-rank step. Goal: our best DDP ≥ 1.00x torch DDP's speed.
- ``--impl``: the implementation's DDPIndividualParameters, DDPBucketed (the DDP table), ShardedOptimizer and
  FSDP (the memory table) get rows before ours, each rank resolving the label itself; a component it lacks
  reads "... is missing: why" in its row.
- ShardedOptimizer vs ZeroRedundancyOptimizer and FSDP vs FSDP2 (``fully_shard``): allocated memory
  after initialization, peak before and through the optimizer step (per GPU; the largest rank's), step
  time. Goal: our ZeRO's peak ≤ torch's.

Times: warm-up steps untimed; each timed step between ``torch.cuda.synchronize()`` calls, its phases with
CUDA events; the slowest rank's time per step. No time is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from bench.common import add_impl_argument, report, tested_implementation, write_report
from bench.distributed.setups import sharding
from bench.distributed.worker import MODELS, VOCAB
from impl.nn import TransformerLM

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("allreduce", "ddp", "memory")
TINY = dict(context=16, batch=2, warmup=1, steps=2, iters=3, allreduce_mib=[1, 10])
GOALS = dict(allreduce=0.95, ddp=1.00, zero=1.00)
ZERO_OURS = "ours: ShardedOptimizer + torch DDP"
TORCH_DDP = "torch DDP (DistributedDataParallel, defaults)"
NO_DDP = "no DDP (one process)"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.distributed.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=None,
                        help="ranks (GPUs); default: every visible GPU, 2 on a CPU")
    parser.add_argument("--model", choices=sorted(MODELS), default="xl",
                        help="A2 Table 1 size; xl = the 2025 handout's (d_model 1600, 48 layers), 2.7B = 2026's xl")
    parser.add_argument("--context", type=int, help="context length (default 512; tiny 16)")
    parser.add_argument("--batch", type=int, help="per-rank batch (default 2: the handout's 4 split over 2 GPUs)")
    parser.add_argument("--warmup", type=int, help="untimed steps (and all-reduces) first (default 5; tiny 1)")
    parser.add_argument("--steps", type=int, help="timed training steps (default 10; tiny 2)")
    parser.add_argument("--iters", type=int, help="timed all-reduces per size (default 20; tiny 3)")
    parser.add_argument("--sections", type=names, default=list(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    parser.add_argument("--allreduce-mib", type=numbers, help="sizes in MiB (default 1,10,100,1024,4096; "
                                                               "on a CPU up to 1024; tiny 1,10)")
    parser.add_argument("--buckets-mb", type=numbers, default=[1, 10, 100, 1000], help="DDPBucketed sizes")
    parser.add_argument("--no-baseline", action="store_true", help="skip the world-size-1 launch")
    add_impl_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("reports/distributed.md"))
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    if args.nproc is None:
        args.nproc = torch.cuda.device_count() if cuda else 2
    if args.nproc < 1 or (cuda and args.nproc > torch.cuda.device_count()):
        parser.error(f"--nproc {args.nproc}: need 1 … {torch.cuda.device_count() if cuda else 'any'}")
    tiny = args.model == "tiny"
    defaults = dict(context=512, batch=2, warmup=5, steps=10, iters=20,
                    allreduce_mib=[1, 10, 100, 1024, 4096] if cuda else [1, 10, 100, 1024])
    for key, value in (TINY if tiny else defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def names(text: str) -> list[str]:
    chosen = text.split(",")
    if unknown := [s for s in chosen if s not in SECTIONS]:
        raise argparse.ArgumentTypeError(f"unknown section {unknown[0]!r}: choose from {', '.join(SECTIONS)}")
    return chosen


def numbers(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return [int(v) if v.is_integer() else v for v in values]


def launch(nproc: int, config: dict, threads: int) -> dict:
    """Run the worker on ``nproc`` ranks through torchrun; rank 0's figures."""
    # The ranks run in this directory (an --impl module or adapters path resolves as it does here), the kit importable.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    env.setdefault("OMP_NUM_THREADS", str(threads))  # a CPU's cores split between the ranks, at every world size
    with tempfile.TemporaryDirectory(prefix="cs336_distributed_") as tmp:
        results = Path(tmp) / "results.json"
        # --standalone: a rendezvous on a free local port; 127.0.0.1, not the host's name, which may not resolve.
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1",
                   f"--nproc-per-node={nproc}", "-m", "bench.distributed.worker", "--results", str(results),
                   "--config", json.dumps(config)]
        print(f"distributed: launching {nproc} rank(s): {config['sections']}", file=sys.stderr, flush=True)
        done = subprocess.run(command, env=env)
        if done.returncode != 0:
            raise SystemExit(f"distributed: the {nproc}-rank launch failed (exit {done.returncode}); see above")
        return json.loads(results.read_text())


# ---------------------------------------------------------------------------------------------
# Cells and tables


def ms(row: dict) -> str:
    return row["error"] if "error" in row else f"{row['step_ms']:.2f} ± {row['std_ms']:.2f}"


def speed(peer: dict | None, ours: dict) -> float | None:
    """peer's time ÷ ours (above 1: ours faster); None where either has no time."""
    if peer is None or "error" in peer or "error" in ours:
        return None
    return peer["step_ms"] / ours["step_ms"]


def x(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def mem(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def verdict(value: float | None, goal: float, higher_is_better: bool = True) -> str:
    if value is None:
        return "not measured"
    met = value >= goal if higher_is_better else value <= goal
    return f"{value:.2f}x — {'met' if met else 'NOT met'}"


def leaks(rows: dict[str, dict], world_size: int) -> str:
    """The note on memory a row left behind once its model, wrapper and optimizer were dropped and collected."""
    leaked = {name: row["leaked_gib"] for name, row in rows.items() if (row.get("leaked_gib") or 0) > 2**-10}
    if not leaked:
        return f"every row at world size {world_size} freed its memory once its objects were dropped"
    return (f"NOT freed once the row's model, wrapper and optimizer were dropped and collected (a leak; world size "
            f"{world_size}, largest rank; the next rows start from a clean slate only where the leak is a hook cycle "
            f"this benchmark breaks): " + "; ".join(f"{name}: {gib * 1024:,.1f} MiB" for name, gib in leaked.items()))


def allreduce_table(results: dict) -> tuple[list[str], list[list[str]], list[str]]:
    n = results["world_size"]
    header = ["size (MiB)", "torch all_reduce (ms)", "torch algbw (GB/s)", "torch busbw (GB/s)", "ours (ms)",
              "ours algbw (GB/s)", "ours busbw (GB/s)", "ours ÷ torch (speed)"]
    rows, worst = [], None
    for row in results["allreduce"]:
        if "error" in row:
            rows.append([f"{row['mib']:g}", row["error"], "", "", row["error"], "", "", ""])
            continue
        cells, nbytes = [f"{row['mib']:g}"], row["mib"] * 2**20
        for name in ("torch", "ours"):
            algbw = nbytes / row[name] / 1e9
            cells += [f"{1000 * row[name]:.3f}", f"{algbw:.2f}", f"{algbw * 2 * (n - 1) / n:.2f}"]
        ratio = row["torch"] / row["ours"]
        worst = ratio if worst is None else min(worst, ratio)
        rows.append(cells + [x(ratio)])
    notes = ["float32 tensors; torch = `dist.all_reduce(t)`; ours = the path of a DDPBucketed bucket: "
             "`dist.all_reduce(t, async_op=True).wait()`, then `t.div_(world_size)`",
             f"{n} rank(s); algbw = bytes / time (GB = 1e9 bytes), busbw = algbw · 2(n−1)/n; "
             "time = slowest rank's mean over the timed calls",
             f"goal: ours ≥ {GOALS['allreduce']:.2f}x torch's speed at every size: worst {verdict(worst, GOALS['allreduce'])}"]
    return header, rows, notes


def ddp_table(runs: dict[int, dict]) -> tuple[list[str], list[list[str]], list[str]]:
    worlds = sorted(runs)
    n = worlds[-1]
    main = runs[n]["ddp"]
    baseline = runs[1]["ddp"].get(NO_DDP) if 1 in runs else None
    scaling = baseline is not None and n > 1
    header = ["variant", *(f"step, world size {k} (ms)" for k in worlds), "fwd+bwd (ms)",
              "grad sync after backward (ms)", "optimizer step (ms)", "peak memory (GiB)", "speed vs torch DDP"]
    header += ["scaling efficiency"] if scaling else []
    rows, best = [], (None, "")
    for name in dict.fromkeys([*runs[worlds[0]]["ddp"], *main]):  # world size 1 adds "no DDP" first
        row = main.get(name, {"error": "—"})
        cells = [name, *(ms(runs[k]["ddp"].get(name, {"error": "—"})) for k in worlds)]
        if "error" in row:
            cells += [""] * 4
        else:
            cells += [f"{t:.2f}" for t in row["phases_ms"]] + [mem(row["peak_after_gib"])]
        ratio = speed(main.get(TORCH_DDP), row) if name in main else None
        cells.append(x(ratio))
        if scaling:
            efficiency = None if name == NO_DDP or name not in main else speed(baseline, row)
            cells.append("" if efficiency is None else f"{efficiency:.2f}")
        if name.startswith("ours") and ratio is not None and (best[0] is None or ratio > best[0]):
            best = (ratio, name)
        rows.append(cells)
    notes = ["every row steps our AdamW (impl.train.AdamW, lr 1e-3, weight decay 0.01) and starts from the same "
             "weights; each rank trains on its own random batch",
             "phases at the largest world size, rank maximum of the means: fwd+bwd = forward, loss, backward; grad "
             "sync after backward = what is left of the communication once backward returns (naive/flat: all of it; "
             "torch DDP waits for its buckets inside backward, so its row reads ~0 there); optimizer = step + zero_grad",
             "naive and flat are the handout's minimal DDP (benchmark code here, §5.2, §5.3.1); torch DDP: "
             "25 MiB buckets, buffers broadcast each forward (its defaults)",
             f"goal: our best DDP ≥ {GOALS['ddp']:.2f}x torch DDP's speed at world size {n}: "
             f"{best[1] or 'none'}, {verdict(best[0], GOALS['ddp'])}"]
    notes += [leaks(runs[k]["ddp"], k) for k in worlds]
    if scaling:
        notes.append(f"scaling efficiency = the world-size-1 step without DDP ÷ this variant's step at world size {n} "
                     f"(same per-rank batch: 1.00 is perfect)")
    return header, rows, notes


def memory_table(results: dict, tested=None) -> tuple[list[str], list[list[str]], list[str]]:
    rows_in = results["memory"]
    header = ["setup", "optimizer", "after init: allocated / peak (GiB)", "peak before optimizer step (GiB)",
              "peak through optimizer step (GiB)", "step (ms)", "peak ÷ torch peer's", "speed vs torch peer"]
    rows, zero = [], None
    for name, (_, optimizer, peer_name) in sharding(tested).items():
        row, peer = rows_in[name], rows_in.get(peer_name) if peer_name else None
        peak_ratio = None
        if peer and "error" not in row and "error" not in peer and row["peak_after_gib"] is not None:
            peak_ratio = row["peak_after_gib"] / peer["peak_after_gib"]
        if name == ZERO_OURS:
            zero = peak_ratio
        cells = [name, optimizer]
        if "error" in row:
            cells += [""] * 3
        else:
            init = "n/a" if row["init_gib"] is None else f"{row['init_gib']:.2f} / {row['init_peak_gib']:.2f}"
            cells += [init, mem(row["peak_before_gib"]), mem(row["peak_after_gib"])]
        rows.append(cells + [ms(row), x(peak_ratio), x(speed(peer, row))])
    notes = [f"world size {results['world_size']}; memory per GPU (torch.cuda.memory_allocated, "
             "max_memory_allocated), the largest rank's: after init = held once the model is built, wrapped (sharded) "
             "and its optimizer made / the peak meanwhile (the full model exists before it is sharded); the other "
             "peaks over the last timed step (optimizer state allocated by then); a CPU has no allocator statistics "
             "(n/a)",
             "FSDP rows: fp32 compute (ours compute_dtype=None; FSDP2 without a MixedPrecisionPolicy); FSDP2 = "
             "fully_shard on every TransformerBlock, then on the root; each ours row is compared with the torch row "
             "named in its peer column",
             f"goal: ShardedOptimizer's peak ÷ ZeroRedundancyOptimizer's (both on torch DDP, torch.optim.AdamW) ≤ "
             f"{GOALS['zero']:.2f}x: {verdict(zero, GOALS['zero'], False)}", leaks(rows_in, results["world_size"])]
    return header, rows, notes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    config = {key: getattr(args, key) for key in ("model", "context", "batch", "warmup", "steps", "iters",
                                                  "sections", "allreduce_mib", "buckets_mb", "impl")}
    tested = tested_implementation(args.impl)  # here too: a label that does not load fails before any launch
    threads = max(1, (os.cpu_count() or 1) // args.nproc)
    runs = {args.nproc: launch(args.nproc, config, threads)}
    if args.nproc > 1 and "ddp" in args.sections and not args.no_baseline:
        runs[1] = launch(1, config | {"sections": ["ddp"]}, threads)
    main_run = runs[args.nproc]
    device = torch.device("cuda" if main_run["backend"] == "nccl" else "cpu")
    d_model, d_ff, layers, heads = MODELS[args.model]
    model = TransformerLM(VOCAB, args.context, d_model, layers, heads, d_ff, device="meta")  # counted, no memory
    params = sum(p.numel() for p in model.parameters())
    setting = (f"{main_run['backend']}: {args.nproc} rank(s), each on {main_run['device']}; model {args.model}: "
               f"d_model {d_model}, d_ff {d_ff}, {layers} layers, {heads} heads, vocab {VOCAB}, {params / 1e6:,.1f}M "
               f"parameters, fp32; context {args.context}, per-rank batch {args.batch}; {args.warmup} warm-up + "
               f"{args.steps} timed steps")
    command = "python -m bench.distributed.benchmark"
    if tested is not None:
        setting += f"; yours: --impl {args.impl} ({tested.name})"
    sections = []
    if "allreduce" in args.sections:
        header, rows, notes = allreduce_table(main_run)
        sections.append(report("All-reduce: ours (DDP's path) vs torch.distributed.all_reduce", command, argv,
                               device, [f"{main_run['backend']}: {args.nproc} rank(s), each on {main_run['device']}; "
                                        f"{args.warmup} warm-up calls", *notes], header, rows))
    if "ddp" in args.sections:
        header, rows, notes = ddp_table(runs)
        sections.append(report(f"DDP: full training step, world size {args.nproc} vs 1", command, argv, device,
                               [setting, *notes], header, rows))
    if "memory" in args.sections:
        header, rows, notes = memory_table(main_run, tested)
        sections.append(report("Optimizer-state sharding and FSDP vs torch ZeRO and FSDP2", command, argv, device,
                               [setting, *notes], header, rows))
    write_report("\n".join(sections), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
