"""Where a training step's time goes: a few steps under torch.profiler, the kernels' time (operators' on a CPU)
summed into categories per step, beside the step's wall-clock, and the device's idle time: the gaps between its
kernels on the profiler's timeline, where it waits for the host (launches, Python, synchronisation). A launch-bound
step has large gaps. The categories go by kernel name: a fused kernel counts once, in the first category its name
matches.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch

from bench.common import sync
from impl.programs.files import atomic_write_text

# First match wins, on the lower-cased kernel (or operator) name: Inductor names its fused kernels after the ops
# they fuse (triton_per_fused__log_softmax_...), cuBLAS and CUTLASS after the GEMM (nvjet_, sm90_xmma_gemm_, ...).
CATEGORIES = (
    ("attention", ("flash", "attn", "attention", "fmha", "sdpa", "sdp_")),
    ("rotary embedding", ("rope", "rotary", "rotate_heads", "neg_select")),  # Inductor's: ..._mul_neg_select_...
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    # Our cross-entropy compiled: max-subtracted logits (amax), their exponentials (_exp_: the model has no other exp).
    ("cross-entropy", ("log_softmax", "cross_entropy", "nll_loss", "logsumexp", "softmax", "amax", "_exp_")),
    ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "cublas", "matmul", "aten::mm", "aten::addmm", "aten::bmm")),
    ("norm", ("rmsnorm", "rms_norm", "norm", "rsqrt")),  # Inductor's RMSNorm: ..._mean_mul_pow_rsqrt_...
    ("copy, fill", ("memcpy", "memset", "aten::copy_", "aten::fill_", "aten::zero_", "copy_kernel", "fillfunctor")),
)
OTHER = "other (elementwise, reductions)"
COLUMNS = [name for name, _ in CATEGORIES] + [OTHER]


def category(name: str) -> str:
    lowered = name.lower()
    return next((label for label, keys in CATEGORIES if any(key in lowered for key in keys)), OTHER)


def profile_steps(train_step, device: torch.device, steps: int, table_path: Path) -> dict[str, float]:
    """Milliseconds per step the device is busy ("busy"), each category's share, and the device's gaps ("idle");
    the profiler's own table (top entries by self time) goes to ``table_path``. The step's wall-clock is the
    caller's, timed without the profiler, which slows the host: so idle is measured here, on the timeline, and not
    taken as the wall-clock minus busy, which mixes two sets of steps."""
    on_gpu = device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if on_gpu else [])
    sync(device)
    with torch.profiler.profile(activities=activities) as profiler:
        for _ in range(steps):
            train_step()
        sync(device)
    gaps = device_gaps([(event.time_range.start, event.time_range.end, event.key) for event in profiler.events()
                        if counted(event, on_gpu)])
    idle = sum(length for length, _, _ in gaps) / 1000 / steps
    per_step = defaultdict(float)
    for event in profiler.key_averages():
        if counted(event, on_gpu):
            microseconds = event.self_device_time_total if on_gpu else event.self_cpu_time_total
            per_step[category(event.key)] += microseconds / 1000 / steps
    table_path.parent.mkdir(parents=True, exist_ok=True)
    sort_key = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    atomic_write_text(table_path, profiler.key_averages().table(sort_by=sort_key, row_limit=30,
                                                                max_name_column_width=80) + gap_table(gaps, steps))
    return {"busy": sum(per_step.values()), "idle": idle, **{column: per_step[column] for column in COLUMNS}}


def device_gaps(spans: list[tuple[float, float, str]]) -> list[tuple[float, str, str]]:
    """The stretches between the first start and the last end that no (start, end, name) span covers, the device's
    gaps: (length, the name of the span that reached furthest before it, the name of the span after it).
    Overlapping spans (several streams; on a CPU, nested operators and the autograd thread's) count once."""
    gaps, reached, last = [], None, ""
    for start, end, name in sorted(spans):
        if reached is not None and start > reached:
            gaps.append((start - reached, last, name))
        if reached is None or end > reached:
            reached, last = end, name
    return gaps


def gap_table(gaps: list[tuple[float, str, str]], steps: int, rows: int = 15) -> str:
    """The gaps summed by the pair of kernels around them, largest first: what the device waits between."""
    by_pair = defaultdict(lambda: [0.0, 0])
    for length, before, after in gaps:
        by_pair[before, after][0] += length
        by_pair[before, after][1] += 1
    lines = [f"\nDevice idle: {sum(length for length, _, _ in gaps) / 1000 / steps:.3f} ms a step in "
             f"{len(gaps) / steps:.0f} gaps; the largest by the kernels before and after them "
             "(µs a step, gaps a step):"]
    for (before, after), (total, count) in sorted(by_pair.items(), key=lambda item: -item[1][0])[:rows]:
        lines.append(f"{total / steps:10.1f} µs {count / steps:6.1f}  {before[:70]}  ->  {after[:70]}")
    return "\n".join(lines) + "\n"


def counted(event, on_gpu: bool) -> bool:
    """Whether the profiler's entry is device work, counted once. On a GPU: the kernels, copies and fills, not the
    operators that launched them (which carry the same time again), nor the optimizer's annotation on the GPU's
    timeline, nor CUPTI's "Command Buffer Full" (the host waiting for a queue slot). On a CPU: leaf operators, whose
    self time is the work, not the modules and functions around them."""
    if not on_gpu:
        return event.key.startswith("aten::")
    return (event.device_type == torch.autograd.DeviceType.CUDA and not event.is_user_annotation
            and event.key != "Command Buffer Full")


def profile_row(config: str, label: str, step_ms: float, times: dict[str, float]) -> list[str]:
    return [config, label, f"{step_ms:.2f}", f"{times['busy']:.2f}", f"{times['idle']:.2f}",
            *(f"{times[column]:.2f}" for column in COLUMNS)]


PROFILE_HEADER = ["config", "implementation", "step (ms)", "device busy (ms)", "device idle (ms)", *COLUMNS]
