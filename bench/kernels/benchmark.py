"""Triton kernels against the strongest peers: FlashAttention-2 and the fused RMSNorm (A2 §3.1.1, §4).

    python -m bench.kernels.benchmark --leaderboard   # the 2025 leaderboard shape: fwd, fwd+bwd vs SDPA, cuDNN, naive
    python -m bench.kernels.benchmark --lm-shapes     # the same table at the LM benchmark's attention shapes
    python -m bench.kernels.benchmark --sweep         # flash_benchmarking (A2 §4.2): seq 128…65536 × d 16…128
    python -m bench.kernels.benchmark --rmsnorm       # GB/s vs eager and torch.compile at the LM's shapes
    python -m bench.kernels.benchmark --sweep --seqs 128,1024 --dims 64 --dtypes bf16      # a slice of the sweep
    python -m bench.kernels.benchmark --tiny          # CPU smoke run through Triton's interpreter (a test uses it)
    python -m bench.kernels.benchmark --impl mypkg    # yours beside ours and the peers, in every table

No flag: all four. ``--impl``: the implementation's FlashAttentionTriton, FlashAttentionPyTorch (its
autograd Functions' ``apply(q, k, v, is_causal)``), flash_attention and RMSNormTriton get rows before
ours; a component it lacks reads "... is missing: why" in its row. One table per benchmark; the report
(default reports/kernels.md) holds the tables of the run. Times are triton.testing.do_bench's median (CUDA
events, L2 flushed between calls, ``--warmup`` / ``--rep`` in ms): the calls as a program makes them, the CPU's
launch overhead included. The attention tables' GPU-time column and the RMSNorm table replay the calls from a CUDA
graph instead (do_bench_cudagraph): the kernels alone. Inputs are drawn before timing; a
cell that runs out of memory reads OOM, one whose kernel cannot run reads "error" (the reason goes to
stderr), and the run goes on.

- Attention FLOPs, causal: 2·2·B·H·N²·d / 2 forward (QKᵀ and PV, half the scores), backward
  2.5x that, fwd+bwd 3.5x. "Naive" is the reference's softmax(QKᵀ/√d)V with a boolean causal
  mask (impl.scaled_dot_product_attention), eager or torch.compile'd.
- RMSNorm bytes, for every implementation alike: forward reads x and g and writes y; backward
  reads x, g and dy and writes dx and dg. GB/s = those bytes / time, so GB/s ratios are time ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from bench.common import ComponentMissing, add_impl_argument, fmt, free_memory, report, tested_implementation, \
    timed, write_report, yours

# The 2025 leaderboard (A2 2025 §1.3.3): B=1, 16 heads, N=16384, d_head=64, causal, bf16, fwd+bwd timed.
LEADERBOARD = dict(batch=1, heads=16, seq=16_384, d_head=64)
# The attention of the LM benchmark's models (bench.train.lm_throughput), where short sequences make the kernel's
# launch and tile choices matter more than at the leaderboard's 16K.
LM_SHAPES = {"TinyStories 17M": dict(batch=128, heads=16, seq=256, d_head=32),
             "GPT-2 small": dict(batch=32, heads=12, seq=1024, d_head=64)}
# Fwd+bwd milliseconds on an H100 that the issue quotes, for reading the table against.
H100_ANCHORS_MS = {"SDPA FLASH": 7.49, "SDPA cuDNN": 4.55, "class record (leaderboard)": 5.36}
SWEEP_SEQS = tuple(2**i for i in range(7, 17))  # 128 … 65536
SWEEP_DIMS = (16, 32, 64, 128)
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
# (label, rows = batch·context, d_model): A2 §3.1's x (4, 512, 2560), the A2 model sizes at 8×2048 tokens,
# and a 4096-wide one.
RMSNORM_SHAPES = (("A2 §3.1 x", 4 * 512, 2560), ("small", 8 * 2048, 768), ("medium", 8 * 2048, 1024),
                  ("large", 8 * 2048, 1280), ("xl", 8 * 2048, 1600), ("2.7B", 8 * 2048, 2560),
                  ("d 4096", 8 * 2048, 4096))
TINY = dict(leaderboard=dict(batch=1, heads=2, seq=32, d_head=16), seqs=(16, 32), dims=(16,), dtypes=("fp32",),
            rmsnorm_shapes=(("tiny", 40, 48),), lm_shapes={"tiny LM": dict(batch=3, heads=2, seq=24, d_head=16)})

LEADERBOARD_HEADER = ["implementation", "forward (ms)", "forward TFLOP/s", "fwd+bwd (ms)", "fwd+bwd TFLOP/s",
                      "row 1's speed-up vs this (fwd+bwd)", "fwd+bwd GPU time (ms)",
                      "row 1's speed-up vs this (GPU time)", "H100 anchor fwd+bwd (ms)"]
GPU_TIME_NOTE = ("GPU time: the same fwd+bwd calls replayed from a CUDA graph (triton.testing.do_bench_cudagraph, "
                 "median; no L2 flush): the kernels alone, without what launching them costs the CPU (Python, "
                 "autograd, Triton's launcher), which the other times include and which a short kernel can exceed")
SWEEP_HEADER = ["implementation", "dtype", "seq", "d", "fwd (ms)", "bwd (ms)", "fwd+bwd (ms)", "PyTorch fwd (ms)",
                "PyTorch bwd (ms)", "PyTorch fwd+bwd (ms)", "fwd+bwd speed-up", "fwd+bwd TFLOP/s"]
RMSNORM_HEADER = ["implementation", "dtype", "shape", "pass", "time (ms)", "GB/s", "eager GB/s", "torch.compile GB/s",
                  "F.rms_norm GB/s", "÷ compile (speed)", "÷ eager (speed)"]

Cell = float | str  # milliseconds, or "OOM" / "error" / "n/a" / "<component> is missing: why"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.kernels.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaderboard", action="store_true", help="the 2025 leaderboard shape vs SDPA and naive")
    parser.add_argument("--lm-shapes", action="store_true",
                        help="the same table at the LM benchmark's attention shapes")
    parser.add_argument("--sweep", action="store_true", help="A2 flash_benchmarking: seq × d × dtype, vs naive")
    parser.add_argument("--rmsnorm", action="store_true", help="fused RMSNorm GB/s vs eager and torch.compile")
    parser.add_argument("--seqs", type=ints, default=SWEEP_SEQS, help="sweep sequence lengths (comma-separated)")
    parser.add_argument("--dims", type=ints, default=SWEEP_DIMS, help="sweep head dimensions (comma-separated)")
    parser.add_argument("--dtypes", type=dtypes, default=tuple(DTYPES), help="sweep/rmsnorm dtypes: bf16,fp32")
    parser.add_argument("--warmup", type=int, default=25, help="do_bench warm-up (ms)")
    parser.add_argument("--rep", type=int, default=100, help="do_bench repetition time (ms)")
    add_impl_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("reports/kernels.md"))
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny shapes through Triton's interpreter")
    args = parser.parse_args(argv)
    if not (args.leaderboard or args.lm_shapes or args.sweep or args.rmsnorm):
        args.leaderboard = args.lm_shapes = args.sweep = args.rmsnorm = True
    return args


def ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def dtypes(text: str) -> tuple[str, ...]:
    names = tuple(text.split(","))
    unknown = [n for n in names if n not in DTYPES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown dtype {unknown[0]!r}: choose from {', '.join(DTYPES)}")
    return names


# ---------------------------------------------------------------------------------------------
# Timing


class Bench:
    """do_bench on a GPU; on a CPU (--tiny) a plain mean over two calls. Failures become table cells."""

    def __init__(self, device: torch.device, warmup_ms: int, rep_ms: int):
        self.device, self.warmup_ms, self.rep_ms = device, warmup_ms, rep_ms

    def ms(self, fn: Callable[[], object], grad_to_none: list[torch.Tensor] | None = None,
           cuda_graph: bool = False) -> Cell:
        """Milliseconds per call. ``cuda_graph``: replay the calls from a CUDA graph (do_bench_cudagraph), so that the
        GPU time of kernels shorter than their launch (Python, autograd, Triton's launcher) is what gets measured."""
        try:
            if self.device.type == "cuda":
                import triton.testing

                if cuda_graph:
                    return triton.testing.do_bench_cudagraph(fn, rep=self.rep_ms, grad_to_none=grad_to_none,
                                                             return_mode="median")
                return triton.testing.do_bench(fn, warmup=self.warmup_ms, rep=self.rep_ms, grad_to_none=grad_to_none,
                                               return_mode="median")
            fn()  # warm-up (compilation)
            return 1000 * timed(fn, self.device, repeat=2) / 2
        except ComponentMissing as missing:  # e.g. a course adapter that raises NotImplementedError when called
            failed = str(missing)
        except torch.OutOfMemoryError:
            failed: Cell = "OOM"
        except Exception as error:  # noqa: BLE001  (an unsupported shape or backend: one cell, not the run)
            print(f"  error: {type(error).__name__}: {(str(error).splitlines() or [''])[0]}", file=sys.stderr)
            failed = "error"
        free_memory(self.device)  # out of the except block: the traceback's frames no longer hold the tensors
        return failed


def cell(value: Cell, spec: str = ".3f") -> str:
    return value if isinstance(value, str) else format(value, spec)


def rate(amount: float, value: Cell, spec: str = ".1f") -> str:
    """amount per second (TFLOP, GB) given milliseconds; blank when the time is not a number."""
    return "" if isinstance(value, str) else format(amount / (value / 1000), spec)


def ratio(numerator: Cell, denominator: Cell) -> str:
    return "" if isinstance(numerator, str) or isinstance(denominator, str) else f"{numerator / denominator:.2f}x"


def attention_tflop(batch: int, heads: int, seq: int, d: int) -> float:
    """Causal forward: 2 matmuls of 2·N²·d FLOPs each, half the scores kept."""
    return 2 * 2 * batch * heads * seq * seq * d / 2 / 1e12


def is_missing(value: Cell) -> bool:
    return isinstance(value, str) and " is missing" in value


def time_attention(bench: Bench, attend: Callable | Cell, q, k, v, backward_alone: bool) -> tuple[Cell, Cell, Cell]:
    """(forward, backward, fwd+bwd) ms of ``attend(q, k, v)``; backward_alone False leaves it "n/a". ``attend`` a
    string: the reason it cannot run (a missing component), shown once."""
    if isinstance(attend, str):
        return attend, "", ""
    dout = torch.randn_like(q)
    forward = bench.ms(lambda: attend(q, k, v))
    backward: Cell = "n/a"
    if backward_alone and not isinstance(forward, str):
        try:
            out = attend(q, k, v)
            backward = bench.ms(lambda: out.backward(dout, retain_graph=True), grad_to_none=[q, k, v])
            del out
        except torch.OutOfMemoryError:
            free_memory(bench.device)
            backward = "OOM"
    both = bench.ms(lambda: attend(q, k, v).backward(dout), grad_to_none=[q, k, v]) \
        if not isinstance(forward, str) else ("" if is_missing(forward) else forward)
    return forward, backward, both


def time_graphed(bench: Bench, attend: Callable | Cell, q, k, v) -> Cell:
    """fwd+bwd GPU time of ``attend(q, k, v)``: the calls replayed from a CUDA graph (see GPU_TIME_NOTE)."""
    if isinstance(attend, str):
        return ""
    dout = torch.randn_like(q)
    return bench.ms(lambda: attend(q, k, v).backward(dout), grad_to_none=[q, k, v], cuda_graph=True)


# ---------------------------------------------------------------------------------------------
# Attention implementations on (B, H, N, d) tensors


def folded(bundle, component: str) -> Callable | str:
    """``bundle.<component>.apply`` (an autograd Function of spec/kernels.py) on (B·H, N, d): heads folded into the
    batch, as the leaderboard calls it; the reason as a string where the implementation lacks it."""
    try:
        function = getattr(bundle, component)
    except ComponentMissing as missing:
        return str(missing)

    def attend(q, k, v):
        B, H, N, D = q.shape
        o = function.apply(q.reshape(B * H, N, D), k.reshape(B * H, N, D), v.reshape(B * H, N, D), True)
        return o.view(B, H, N, D)

    return attend


def multihead(bundle, tiny: bool) -> Callable | str | None:
    """``bundle.flash_attention`` on (B, H, N, d) (ours: the same kernels as custom operators, kept in
    torch.compile's graph), compiled; None on a CPU (--tiny), the reason where the implementation lacks it."""
    try:
        attention = bundle.flash_attention
    except ComponentMissing as missing:
        return str(missing)
    return None if tiny else torch.compile(lambda q, k, v: attention(q, k, v, is_causal=True))


def sdpa(backend_name: str) -> Callable:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = getattr(SDPBackend, backend_name)

    def attend(q, k, v):
        with sdpa_kernel(backend):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    return attend


def naive(seq: int, device: torch.device) -> Callable:
    """The reference's attention with a boolean causal mask (True = may attend), built once."""
    import impl

    mask = torch.ones(seq, seq, dtype=torch.bool, device=device).tril()

    def attend(q, k, v):
        return impl.scaled_dot_product_attention(q, k, v, mask)

    return attend


def qkv(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, seed: int = 0):
    generator = torch.Generator(device=device).manual_seed(seed)
    return [torch.randn(shape, generator=generator, device=device, dtype=dtype).requires_grad_(True) for _ in range(3)]


# ---------------------------------------------------------------------------------------------
# The three tables


def implementations(tested) -> list[tuple[str, object]]:
    """(row label prefix, bundle): the implementation under test first (when not the reference), then ours."""
    import impl

    return ([(yours(tested, ""), tested)] if tested is not None else []) + [("ours: ", impl)]


def leaderboard(bench: Bench, tiny: bool, tested=None, shape: dict | None = None,
                anchors: dict[str, float] = H100_ANCHORS_MS) -> tuple[list[str], list[list[str]]]:
    """The contenders at ``shape`` (default: the leaderboard's), with the issue's H100 times at that shape."""
    shape = shape or (TINY["leaderboard"] if tiny else LEADERBOARD)
    B, H, N, D = shape["batch"], shape["heads"], shape["seq"], shape["d_head"]
    dtype = torch.float32 if tiny else torch.bfloat16  # the interpreter's bf16 dot products are not what is smoked
    q, k, v = qkv((B, H, N, D), dtype, bench.device)
    flop = attention_tflop(B, H, N, D)
    contenders: list[tuple[str, Callable | str | None, str]] = []
    for prefix, bundle in implementations(tested):
        contenders += [
            (f"{prefix}FlashAttentionTriton", folded(bundle, "FlashAttentionTriton"),
             "class record (leaderboard)" if bundle is not tested else ""),
            (f"{prefix}flash_attention, torch.compile'd (as the leaderboard times it)", multihead(bundle, tiny), ""),
        ]
        if tiny:  # at the GPU shape (N=16384) its Python loop over 64-row tiles runs for minutes per call
            contenders.append((f"{prefix}FlashAttentionPyTorch (tiles in PyTorch)",
                               folded(bundle, "FlashAttentionPyTorch"), ""))
    contenders += [
        ("SDPA FLASH", None if tiny else sdpa("FLASH_ATTENTION"), "SDPA FLASH"),
        ("SDPA cuDNN", None if tiny else sdpa("CUDNN_ATTENTION"), "SDPA cuDNN"),
        ("naive PyTorch, eager", naive(N, bench.device), ""),
        ("naive PyTorch, torch.compile'd", None if tiny else torch.compile(naive(N, bench.device)), ""),
    ]
    timings = {}
    for name, attend, _ in contenders:
        print(f"leaderboard: {name}", file=sys.stderr)
        if attend is None:
            timings[name] = ("n/a", "n/a", "n/a", "n/a")
        else:
            forward, _, both = time_attention(bench, attend, q, k, v, False)
            graphed = time_graphed(bench, attend, q, k, v) if not isinstance(forward, str) else ""
            timings[name] = (forward, "", both, graphed)
        free_memory(bench.device)
    first = timings[contenders[0][0]]
    rows = []
    for name, _, anchor in contenders:
        forward, _, both, graphed = timings[name]
        rows.append([name, cell(forward), rate(flop, forward), cell(both), rate(3.5 * flop, both),
                     ratio(both, first[2]), cell(graphed), ratio(graphed, first[3]), fmt(anchors.get(anchor), ".2f")])
    return LEADERBOARD_HEADER, rows


def sweep(bench: Bench, seqs, dims, dtype_names, tested=None) -> tuple[list[str], list[list[str]]]:
    rows = []
    for dtype_name in dtype_names:
        for seq in seqs:
            for d in dims:
                print(f"sweep: {dtype_name} seq {seq} d {d}", file=sys.stderr)
                try:
                    q, k, v = qkv((1, 1, seq, d), DTYPES[dtype_name], bench.device)  # batch 1 (one head)
                except torch.OutOfMemoryError:
                    rows.append(["all", dtype_name, str(seq), str(d)] + ["OOM"] * 6 + ["", ""])
                    continue
                mine = {}
                for prefix, bundle in implementations(tested):
                    mine[f"{prefix}FlashAttentionTriton"] = time_attention(
                        bench, folded(bundle, "FlashAttentionTriton"), q, k, v, True)
                    free_memory(bench.device)
                try:
                    peer = time_attention(bench, naive(seq, bench.device), q, k, v, True)
                except torch.OutOfMemoryError:  # the (seq, seq) mask itself
                    peer = ("OOM", "OOM", "OOM")
                free_memory(bench.device)
                for name, times in mine.items():
                    rows.append([name, dtype_name, str(seq), str(d), *map(cell, times), *map(cell, peer),
                                 ratio(peer[2], times[2]), rate(3.5 * attention_tflop(1, 1, seq, d), times[2])])
                del q, k, v
    return SWEEP_HEADER, rows


def fused_rmsnorm(bundle, d: int, device: torch.device, dtype: torch.dtype):
    """``bundle.RMSNormTriton(d)``, or the reason (a string) where the implementation lacks it."""
    try:
        return bundle.RMSNormTriton(d, device=device, dtype=dtype)
    except ComponentMissing as missing:
        return str(missing)


def rmsnorm(bench: Bench, shapes, dtype_names, tiny: bool, tested=None) -> tuple[list[str], list[list[str]]]:
    from impl.nn import RMSNorm

    rows = []
    for dtype_name in dtype_names:
        dtype = DTYPES[dtype_name]
        for label, n_rows, d in shapes:
            print(f"rmsnorm: {dtype_name} {label} ({n_rows}, {d})", file=sys.stderr)
            size = torch.finfo(dtype).bits // 8  # x, y, dy, dx and the gain all in ``dtype``
            forward_gb = (2 * n_rows * d + d) * size / 1e9  # read x, g; write y
            both_gb = forward_gb + (3 * n_rows * d + 2 * d) * size / 1e9  # read x, g, dy; write dx, dg
            x = torch.randn(n_rows, d, device=bench.device, dtype=dtype, requires_grad=True)
            dy = torch.randn_like(x)
            eager = RMSNorm(d, device=bench.device, dtype=dtype)
            fused = {f"{prefix}RMSNormTriton": fused_rmsnorm(bundle, d, bench.device, dtype)
                     for prefix, bundle in implementations(tested)}
            contenders = {
                **fused,
                "eager": eager,
                "compile": None if tiny else torch.compile(eager),
                "F.rms_norm": lambda t, w=eager.weight: torch.nn.functional.rms_norm(t, (d,), w, 1e-5),
            }
            times = {}
            for name, norm in contenders.items():
                if norm is None or isinstance(norm, str):
                    times[name] = ("n/a", "n/a") if norm is None else (norm, "")
                    continue
                params = [x, norm.weight] if name in fused else [x, eager.weight]
                times[name] = (bench.ms(lambda: norm(x), cuda_graph=True),
                               bench.ms(lambda: norm(x).backward(dy), grad_to_none=params, cuda_graph=True))
            free_memory(bench.device)
            for name in fused:
                for i, (phase, gb) in enumerate((("forward", forward_gb), ("fwd+bwd", both_gb))):
                    mine = times[name][i]
                    if is_missing(times[name][0]) and i:  # the reason once: one row for the missing component
                        continue
                    rows.append([name, dtype_name, f"{n_rows}×{d} ({label})", phase, cell(mine, ".4f"),
                                 rate(gb, mine, ".0f"), rate(gb, times["eager"][i], ".0f"),
                                 rate(gb, times["compile"][i], ".0f"), rate(gb, times["F.rms_norm"][i], ".0f"),
                                 ratio(times["compile"][i], mine), ratio(times["eager"][i], mine)])
            del x, dy, contenders, fused
    return RMSNORM_HEADER, rows


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if args.tiny:
        # The kernels' mode is fixed when their module is imported: set before impl is.
        os.environ.setdefault("TRITON_INTERPRET", "1")
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print("bench.kernels.benchmark needs a GPU (CUDA is not available here); `--tiny` runs a CPU smoke test "
              "through Triton's interpreter", file=sys.stderr)
        return 2
    else:
        device = torch.device("cuda")
    tested = tested_implementation(args.impl)  # after TRITON_INTERPRET: its kernels' mode is fixed at import
    bench = Bench(device, args.warmup, args.rep)
    tiny = args.tiny
    if tiny:
        seqs, dims, dtype_names = TINY["seqs"], TINY["dims"], TINY["dtypes"]
    else:
        seqs, dims, dtype_names = args.seqs, args.dims, args.dtypes
    command = "python -m bench.kernels.benchmark"
    who = [] if tested is None else [f"yours: --impl {args.impl} ({tested.name}), in the rows before ours'"]
    timing = (f"times: triton.testing.do_bench median, warmup {args.warmup} ms, rep {args.rep} ms"
              if device.type == "cuda" else "times: CPU, Triton interpreter, mean of 2 calls (a smoke, not a speed)")
    tiles = ("FlashAttention tiles: fixed per dtype and head dim (CS336_FLASH_AUTOTUNE=0)"
             if os.environ.get("CS336_FLASH_AUTOTUNE") == "0" else "FlashAttention tiles: autotuned per shape")
    sections = []
    if args.leaderboard:
        s = TINY["leaderboard"] if tiny else LEADERBOARD
        header, rows = leaderboard(bench, tiny, tested)
        sections.append(report(
            "FlashAttention-2: the 2025 leaderboard shape", command, argv, device,
            [f"B={s['batch']}, {s['heads']} heads, N={s['seq']}, d={s['d_head']}, causal, "
             f"{'fp32 (tiny)' if tiny else 'bf16'}; fwd+bwd = o.backward(dO) after the forward", timing,
             f"TFLOP/s: causal forward 2·B·H·N²·d FLOPs, fwd+bwd 3.5x that",
             "H100 anchors (issue): SDPA FLASH 7.49 ms, cuDNN 4.55 ms, the class record 5.36 ms, fwd+bwd",
             GPU_TIME_NOTE, tiles,
             *(["FlashAttentionPyTorch: A2 §4.2.2 (a), tiles looped in Python (slow by design: for comparison)"]
               if tiny else []), *who],
            header, rows))
    for label, s in (TINY["lm_shapes"] if tiny else LM_SHAPES).items() if args.lm_shapes else ():
        header, rows = leaderboard(bench, tiny, tested, shape=s, anchors={})
        sections.append(report(
            f"FlashAttention-2 at the LM's shapes: {label}", command, argv, device,
            [f"B={s['batch']}, {s['heads']} heads, N={s['seq']}, d={s['d_head']}, causal, "
             f"{'fp32 (tiny)' if tiny else 'bf16'}; fwd+bwd = o.backward(dO) after the forward", timing,
             GPU_TIME_NOTE, tiles, *who],
            header, rows))
    if args.sweep:
        header, rows = sweep(bench, seqs, dims, dtype_names, tested)
        sections.append(report(
            "FlashAttention-2 vs PyTorch attention (A2 flash_benchmarking)", command, argv, device,
            ["batch 1, causal, Q/K/V (1, N, d); PyTorch = naive softmax(QKᵀ/√d)V with a causal mask (eager)",
             "bwd alone: o.backward(dO, retain_graph=True) on one forward's graph; speed-up = PyTorch ÷ the row's "
             "fwd+bwd",
             timing, tiles, *who],
            header, rows))
    if args.rmsnorm:
        shapes = TINY["rmsnorm_shapes"] if tiny else RMSNORM_SHAPES
        header, rows = rmsnorm(bench, shapes, dtype_names, tiny, tested)
        sections.append(report(
            "Fused RMSNorm vs eager and torch.compile", command, argv, device,
            ["eager = impl.nn.RMSNorm (fp32 math); torch.compile of the same module; F.rms_norm for reference",
             "GB/s = the bytes every implementation must move (fwd: read x, g, write y; bwd adds read x, g, dy, "
             "write dx, dg) / time; goal: RMSNormTriton ÷ compile ≥ 1.00x (H100 anchor: 2.8 TB/s forward)",
             "times: GPU time of calls replayed from a CUDA graph (triton.testing.do_bench_cudagraph, median; no L2 "
             "flush, so inputs under 50 MB may sit in L2), for every contender alike: these kernels take less GPU "
             "time than their launch, which would otherwise be what is timed" if device.type == "cuda" else timing,
             *who],
            header, rows))
    write_report("\n".join(sections), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
