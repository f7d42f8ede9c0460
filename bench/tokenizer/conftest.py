"""Benchmark harness: our implementation and its peers on the same input, in the same run.

Each benchmark sets ``benchmark.group`` and names itself through ``extra_info["impl"]``
("ours" or the peer's name) and, where it makes sense, ``extra_info["bytes"]`` for MB/s. At the
end of the run every group is printed as a table with each peer's time relative to ours,
and written to reports/bench.json. Nothing here asserts a time.
"""

from __future__ import annotations

import json
import os
import platform
from collections import defaultdict
from pathlib import Path

import pytest

REPORT = Path("reports") / "bench.json"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups: dict[str, list] = defaultdict(list)
    for bench in session.benchmarks:
        groups[bench.group].append(bench)
    rows = []
    terminalreporter.section(f"ours vs peers ({machine()})")
    for group, benches in groups.items():
        ours = next((b for b in benches if b.extra_info.get("impl") == "ours"), None)
        terminalreporter.write_line(f"\n{group}")
        terminalreporter.write_line("| implementation | mean | MB/s | our speed ÷ its speed | notes |")
        terminalreporter.write_line("| --- | ---: | ---: | ---: | --- |")
        for bench in benches:
            mean = bench.stats.mean
            size = bench.extra_info.get("bytes")
            ratio = mean / ours.stats.mean if ours is not None else float("nan")  # ≥ 1: ours is as fast or faster
            notes = ", ".join(f"{k} {v}" for k, v in bench.extra_info.items() if k not in ("impl", "bytes"))
            terminalreporter.write_line(f"| {bench.extra_info.get('impl', bench.name)} | {mean:.3f} s | "
                                        f"{size / mean / 1e6:.2f} | {ratio:.2f}x | {notes} |" if size else
                                        f"| {bench.extra_info.get('impl', bench.name)} | {mean:.3f} s | - | "
                                        f"{ratio:.2f}x | {notes} |")
            rows.append({"group": group, "impl": bench.extra_info.get("impl", bench.name), "mean_s": mean,
                         "our_speed_over_its_speed": ratio, **bench.extra_info})
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps({"machine": machine(), "results": rows}, indent=2) + "\n")
    terminalreporter.write_line(f"\nwritten to {REPORT}")
