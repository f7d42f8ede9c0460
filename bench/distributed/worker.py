"""The ranks' side of bench/distributed/benchmark.py: one process per GPU (or CPU rank), started by torchrun.

    python -m torch.distributed.run --standalone --nproc-per-node N -m bench.distributed.worker \
        --results FILE --config JSON     # what `python -m bench.distributed.benchmark` runs; not meant to be typed

Each rank joins the default process group (NCCL on its GPU, gloo on a CPU), runs the requested sections
(handout A2 §5–§7; the 2025 handout §2.2–§2.3 for the bucketed DDP and the all-reduce sweep) and gathers
its figures to rank 0 (``all_gather_object``), which writes them as JSON for the launcher's report:

- ``allreduce``: seconds per all-reduce of a float32 tensor, raw ``torch.distributed.all_reduce`` vs the
  path our DDP's buckets take (``async_op=True``, ``wait``, divide by the world size).
- ``ddp``: a full training step (forward, loss, backward, gradient synchronization, optimizer step) of
  impl.nn.TransformerLM under each DDP variant, all with our AdamW (impl.train.AdamW).
  ``config["impl"]``: the ``--impl`` label; each rank resolves it itself and adds that implementation's rows.
  A component it lacks makes its row read "... is missing: why".
- ``memory``: allocated memory after initialization and peak memory before and through the optimizer
  step, plus the step time, for optimizer-state sharding and FSDP against torch's ZeRO and FSDP2.

A step is timed between synchronizations (``torch.cuda.synchronize``, A2 §5.1.1), its phases with CUDA
events on the compute stream (``perf_counter`` on a CPU); warm-up steps are not timed; a step's time is
the slowest rank's. Memory figures come from the last timed step (optimizer state allocated by then).
After each row the memory still allocated once its objects are dropped and collected is recorded (a leak
shows there), then hook cycles are broken so that the next row starts clean.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import timeit
import weakref
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from bench.common import ComponentMissing, device_name, gathered, init, sync, tested_implementation, timed
from bench.distributed.setups import Setup, ddp_variants, sharding
from bench.train.a2_benchmark import SIZES, VOCAB
from impl.nn import TransformerLM
from impl.programs.launch import exit_rank
from impl.train import cross_entropy

MIB = 2**20
# --model: A2's Table 1 sizes by name, except that "xl" is the XL of the DDP problems (2025 handout Table 1:
# d_model 1600, 48 layers); the 2026 handout's xl (d_model 2560) is "2.7B".
MODELS = {**SIZES, "xl": SIZES["xl-2025"]}
def release(device: torch.device) -> None:
    """Free the last row's model: wrappers' hooks make reference cycles, which only the collector breaks."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def log(text: str) -> None:
    if dist.get_rank() == 0:
        print(f"[world size {dist.get_world_size()}] {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# All-reduce bandwidth


def allreduce(sizes_mib: list[float], device: torch.device, warmup: int, iters: int) -> list[dict]:
    """Seconds per all-reduce (slowest rank's mean) at each size: torch's call, and our DDP's path."""
    world_size, rows = dist.get_world_size(), []
    for mib in sizes_mib:
        log(f"all-reduce {mib} MiB")
        try:
            buffer = torch.zeros(int(mib * MIB) // 4, device=device)  # float32; zeros stay zeros through sums
        except torch.OutOfMemoryError:
            rows.append({"mib": mib, "error": "OOM"})
            continue

        def ours() -> None:  # as impl.distributed.ddp.DDPBucketed all-reduces a bucket's flat buffer
            dist.all_reduce(buffer, async_op=True).wait()
            buffer.div_(world_size)

        n = iters if device.type == "cuda" else max(2, min(iters, int(1024 // mib)))  # gloo: 1 GiB takes seconds
        row = {"mib": mib}
        for name, fn in (("torch", lambda: dist.all_reduce(buffer)), ("ours", ours)):
            for _ in range(warmup):
                fn()
            sync(device)
            dist.barrier()
            row[name] = max(gathered(timed(fn, device, n) / n))
        rows.append(row)
        del buffer
        release(device)
    return rows


# ---------------------------------------------------------------------------------------------
# One training step, timed


class Marks:
    """Points in a step on the compute stream: CUDA events (no synchronization inside the step) or a clock."""

    def __init__(self, device: torch.device):
        self.cuda, self.points = device.type == "cuda", []
        self.mark()

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.points.append(event)
        else:
            self.points.append(timeit.default_timer())

    def intervals_ms(self) -> list[float]:
        """Milliseconds between consecutive marks; call after the step's synchronization."""
        pairs = zip(self.points, self.points[1:])
        return [a.elapsed_time(b) if self.cuda else 1000 * (b - a) for a, b in pairs]


def gib(value: int) -> float:
    return value / 2**30


def train_step(setup: Callable[..., Setup], config: dict, device: torch.device, params: list[weakref.ref]) -> dict:
    """Build a fresh model (same seed on every rank), wrap it, train ``warmup + steps`` steps; the timings.

    ``params`` receives weak references to the model's parameters (the wrapper's too), for the cleanup."""
    d_model, d_ff, num_layers, num_heads = MODELS[config["model"]]
    cuda, rank = device.type == "cuda", dist.get_rank()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    generator = torch.Generator(device).manual_seed(rank)  # each rank its own batch: data parallel
    x, y = (torch.randint(0, VOCAB, (config["batch"], config["context"]), device=device, generator=generator)
            for _ in range(2))
    torch.manual_seed(0)
    model = TransformerLM(VOCAB, config["context"], d_model, num_layers, num_heads, d_ff, device=device)
    params.extend(map(weakref.ref, model.parameters()))
    wrapper, optimizer, sync_gradients = setup(model, device)
    params.extend(map(weakref.ref, wrapper.parameters()))
    del model  # the wrapper holds it (or its shards): nothing here keeps FSDP's full weights alive
    result = {"init_gib": gib(torch.cuda.memory_allocated(device)) if cuda else None,  # held once initialized
              "init_peak_gib": gib(torch.cuda.max_memory_allocated(device)) if cuda else None}  # reached meanwhile
    times, phases = [], []
    total = config["warmup"] + config["steps"]
    for i in range(total):
        last = i == total - 1
        if cuda and last:
            torch.cuda.reset_peak_memory_stats(device)
        sync(device)
        start = timeit.default_timer()
        marks = Marks(device)
        cross_entropy(wrapper(x), y).backward()
        marks.mark()
        sync_gradients()
        marks.mark()
        if cuda and last:
            result["peak_before_gib"] = gib(torch.cuda.max_memory_allocated(device))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        marks.mark()
        sync(device)
        if i >= config["warmup"]:
            times.append(1000 * (timeit.default_timer() - start))
            phases.append(marks.intervals_ms())
    if cuda:
        result["peak_after_gib"] = gib(torch.cuda.max_memory_allocated(device))
    return result | {"times": times, "phases": [statistics.mean(p) for p in zip(*phases)]}


def held_bytes(device: torch.device) -> int:
    """Bytes of tensors alive: the CUDA allocator's count, or on a CPU the storages of the tensors Python sees."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    storages = {}
    for obj in gc.get_objects():
        if isinstance(obj, Tensor) and obj.device.type == "cpu":
            try:
                storage = obj.untyped_storage()
            except (RuntimeError, NotImplementedError):  # sparse tensors, wrapper subclasses (DTensor): no storage
                continue
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def break_hook_cycles(params: list[weakref.ref]) -> None:
    """Drop the post-accumulate-grad hooks a wrapper left on parameters still alive. C++ holds a parameter's hooks
    and a hook (a bound method) holds its wrapper, hence the model: a cycle Python's collector cannot see, so a
    wrapper whose hooks hold it strongly would otherwise keep its memory through every later row."""
    for p in (ref() for ref in params):
        if p is None:
            continue
        if p._post_accumulate_grad_hooks:
            p._post_accumulate_grad_hooks.clear()
        p.grad = None


def measure(setup: Callable[..., Setup], config: dict, device: torch.device) -> dict:
    """``train_step`` on every rank, merged: per step the slowest rank; memory the largest rank's; what the row
    left allocated once its objects were dropped and collected (a leak) before the hooks' cycles were broken."""
    release(device)
    before, params = held_bytes(device), []
    try:
        mine = train_step(setup, config, device, params)
    except torch.OutOfMemoryError:  # every rank runs the same shapes: they run out together
        mine = {"error": "OOM"}
    except ComponentMissing as missing:  # the implementation under test lacks a component: its row says which
        mine = {"error": str(missing)}
    except Exception as error:  # noqa: BLE001  (one failing implementation: one row, not the run)
        print(f"rank {dist.get_rank()}: {type(error).__name__}: {error}", file=sys.stderr)
        mine = {"error": "error"}
    release(device)  # out of the except blocks: a traceback's frames no longer hold the model
    mine["leaked_gib"] = gib(held_bytes(device) - before)
    break_hook_cycles(params)
    release(device)
    ranks = gathered(mine)
    errors = [r["error"] for r in ranks if "error" in r]
    if errors:
        return {"error": errors[0]}
    steps = [max(step) for step in zip(*(r["times"] for r in ranks))]  # a step ends when its slowest rank does
    merged = {"step_ms": statistics.mean(steps), "std_ms": statistics.stdev(steps) if len(steps) > 1 else 0.0,
              "phases_ms": [max(p) for p in zip(*(r["phases"] for r in ranks))]}
    for key in ("init_gib", "init_peak_gib", "peak_before_gib", "peak_after_gib", "leaked_gib"):
        values = [r.get(key) for r in ranks]
        merged[key] = None if None in values else max(values)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.distributed.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=json.loads, required=True, help="the settings, as JSON (from the launcher)")
    parser.add_argument("--results", type=Path, required=True, help="where rank 0 writes the figures (JSON)")
    args = parser.parse_args(argv)
    config = args.config
    device = init()
    tested = tested_implementation(config["impl"])  # each rank resolves the label itself: nothing is pickled
    import torch._dynamo  # noqa: F401  (the first optimizer step imports it anyway: here it is frozen with the rest)

    gc.freeze()  # what the imports made lives on: the collections between rows then skip it (seconds saved)
    world_size = dist.get_world_size()
    results = {"world_size": world_size, "backend": dist.get_backend(), "device": device_name(device)}
    if "allreduce" in config["sections"]:
        results["allreduce"] = allreduce(config["allreduce_mib"], device, config["warmup"], config["iters"])
    if "ddp" in config["sections"]:
        results["ddp"] = {}
        for name, setup in ddp_variants(config["buckets_mb"], world_size, tested).items():
            log(f"ddp: {name}")
            results["ddp"][name] = measure(setup, config, device)
    if "memory" in config["sections"]:
        results["memory"] = {}
        for name, (setup, _, _) in sharding(tested).items():
            log(f"memory: {name}")
            results["memory"][name] = measure(setup, config, device)
    if dist.get_rank() == 0:
        args.results.write_text(json.dumps(results, indent=1))
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    exit_rank(main())
