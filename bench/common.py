"""What every benchmark shares: the implementation under test, timing, peak memory, FLOPs and MFU, the report.

``--impl`` (or ``CS336_IMPL``) names the implementation to time beside the reference and the peer, in the
suite's forms: ``module``, ``module:attr``, ``adapters:path/to/adapters.py``; default ``impl`` (the reference,
then shown once). A component it lacks (or a feature its interface cannot give, e.g. gradients through course
adapters) is a table row reading "... is missing: why", never a crash. Everything also runs on a CPU, where
memory and MFU read "n/a".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import os
import platform
import shlex
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from impl.programs.files import atomic_write_text

# The suite's loader (the same --impl forms); the other benchmark modules import these names from here.
from spec import ComponentMissing
from spec.loading import ENV_VAR, REFERENCE, load_implementation

# Dense bf16 tensor-core peaks (no sparsity), SXM parts, as nanoGPT's estimate_mfu uses them.
PEAK_BF16_FLOPS = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def sync(device: torch.device) -> None:
    """Wait for queued kernels: CUDA calls return before the GPU has done the work (A2 §2.1.3)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeat: int = 1) -> float:
    """Wall-clock seconds for ``repeat`` calls of ``fn``, synchronized before the clock starts and stops."""
    sync(device)
    start = timeit.default_timer()
    for _ in range(repeat):
        fn()
    sync(device)
    return timeit.default_timer() - start


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast (fp32 master weights) or plain fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp32":
        return contextlib.nullcontext()
    raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    """Most memory held by tensors since the last reset; None on a CPU (no allocator statistics)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def free_memory(device: torch.device) -> None:
    """Drop compiled graphs and cached blocks so that the next measurement starts clean."""
    torch.compiler.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def flops_per_token(non_embedding_params: int, num_layers: int, d_model: int, context_length: int) -> int:
    """Training FLOPs per token, nanoGPT's estimate_mfu (PaLM appendix B): 6N + 12·L·d_model·T.

    N counts every parameter except the token embedding (a lookup, not a matmul); the LM head
    is a matmul and stays in. 12·L·d·T is attention's QKᵀ and AV, forward and backward.
    """
    return 6 * non_embedding_params + 12 * num_layers * d_model * context_length


def peak_bf16_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for chip, peak in PEAK_BF16_FLOPS.items() if chip in name), None)


def mfu(tokens_per_s: float, flops_per_token: int, device: torch.device) -> float | None:
    """Model FLOPs utilization: achieved model FLOP/s over the chip's dense bf16 peak; None if unknown."""
    peak = peak_bf16_flops(device)
    return None if peak is None else tokens_per_s * flops_per_token / peak


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def report(title: str, command: str, argv: Sequence[str], device: torch.device, notes: Sequence[str],
           header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown report: title, machine and command line, notes, then one table."""
    lines = [f"# {title}", "", f"- device: {device_name(device)}", f"- torch {torch.__version__}",
             f"- command: `{shlex.join([*command.split(), *argv])}`", *(f"- {note}" for note in notes), "",
             "| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(text: str, out: Path) -> None:
    print(text, end="")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)  # a report is whole or absent, never half of one
    print(f"\nwritten to {out}")


def fmt(value: float | None, spec: str) -> str:
    """A table cell: the value formatted, or n/a where it cannot be measured here."""
    return "n/a" if value is None else format(value, spec)


# ---------------------------------------------------------------------------------------------
# Ranks of a torchrun launch

RANK_TIMEOUT = datetime.timedelta(minutes=5)  # far above any one step or all-reduce of the benchmarks


def init() -> torch.device:
    """Join the default group under torchrun (NCCL, one GPU a rank; gloo on CPUs); a collective left waiting by a
    failed rank raises after RANK_TIMEOUT instead of hanging."""
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device, timeout=RANK_TIMEOUT)
        return device
    dist.init_process_group("gloo", timeout=RANK_TIMEOUT)
    return torch.device("cpu")


def gathered(value):
    """Every rank's ``value``, in rank order (a collective)."""
    values: list = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


# ---------------------------------------------------------------------------------------------
# The implementation under test


def add_impl_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--impl", default=os.environ.get(ENV_VAR, REFERENCE), metavar="LABEL",
                        help="the implementation to time beside the reference and the peer: module, module:attr or "
                             f"adapters:path/to/adapters.py (default: ${ENV_VAR}, else the reference, {REFERENCE})")


def tested_implementation(label: str):
    """The bundle ``--impl`` names, or None for the reference (its rows are the reference's, shown once)."""
    bundle = load_implementation(label)
    return None if bundle.is_reference else bundle


def yours(bundle, what: str) -> str:
    """A row label for the implementation under test: ``yours, NAME: what``."""
    return f"yours, {bundle.name}: {what}"


def trainable(bundle, component: str):
    """``bundle.<component>``, a module class to be trained: missing when the interface gives no gradients."""
    member = getattr(bundle, component)
    if "autograd" in getattr(member, "kit_unsupported", ()):  # the features a bridged member declares it lacks
        raise ComponentMissing(component, "its interface gives its parameters no gradients (course adapters take the "
                                          "weights by value): it cannot be trained")
    return member


def parse_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header, rows) of each markdown table in a report (what ``report`` writes), for reading reports back."""
    found, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            header, _, *rows = [[cell.strip() for cell in row.strip("|").split("|")] for row in block]
            found.append((header, rows))
            block = []
    return found
