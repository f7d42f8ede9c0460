"""Benchmark harness: an implementation, ours and the peers on the same input, in the same run.

``--impl`` (or ``CS336_IMPL``; default the reference) names the implementation under test: every test
that takes the ``contender`` fixture runs for ours and, when --impl is not the reference, for it too.
Each benchmark sets ``benchmark.group`` and names itself through ``extra_info["impl"]`` ("ours",
"yours, NAME" or the peer's name) and, where it makes sense, ``extra_info["bytes"]`` for MB/s. At the
end of the run every group is printed as a table with each row's time relative to the implementation
under test, a row "missing" (and why) for each component it lacks, and written to reports/bench.json.
Nothing here asserts a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.common import ENV_VAR, REFERENCE, ComponentMissing, load_implementation, yours
from impl.programs.files import atomic_write_text

REPORT = Path("reports") / "bench.json"
MISSING = pytest.StashKey[list[dict]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--impl", default=os.environ.get(ENV_VAR, REFERENCE), metavar="LABEL",
                     help="the implementation to time beside ours and the peers: module, module:attr or "
                          f"adapters:path/to/adapters.py (default: ${ENV_VAR}, else {REFERENCE})")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[MISSING] = []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "contender" in metafunc.fixturenames:
        label = metafunc.config.getoption("impl")
        labels = [label, REFERENCE] if label != REFERENCE else [REFERENCE]  # the implementation under test first
        metafunc.parametrize("contender", labels, indirect=True, scope="module",
                             ids=["ours" if x == REFERENCE else "yours" for x in labels])


@dataclass
class Contender:
    """One implementation a benchmark times: the reference ("ours") or the one --impl names ("yours")."""

    label: str
    bundle: Any
    tested: bool  # the implementation under test: the table's baseline
    config: pytest.Config

    @property
    def name(self) -> str:
        return "ours" if self.bundle.is_reference else yours(self.bundle, "").removesuffix(": ")

    @property
    def info(self) -> dict:
        return {"impl": self.name, "tested": self.tested}

    def member(self, component: str, group: str) -> Any:
        """``bundle.<component>``; if it lacks it, a "missing" row in ``group`` and the test is skipped."""
        with self.missing_as_row(group):
            return getattr(self.bundle, component)

    @contextlib.contextmanager
    def missing_as_row(self, group: str) -> Iterator[None]:
        """ComponentMissing inside (e.g. an adapter raising NotImplementedError): a row saying why, and a skip."""
        try:
            yield
        except ComponentMissing as missing:
            row = {"group": group, "impl": self.name, "missing": str(missing)}
            if row not in self.config.stash[MISSING]:  # one row per group, however many tests found it missing
                self.config.stash[MISSING].append(row)
            pytest.skip(str(missing))


@pytest.fixture(scope="module")
def contender(request: pytest.FixtureRequest) -> Contender:
    label = request.param
    return Contender(label, load_implementation(label), label == request.config.getoption("impl"), request.config)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    missing = config.stash.get(MISSING, [])
    if (session is None or not session.benchmarks) and not missing:
        return
    groups: dict[str, list] = defaultdict(list)
    for bench in session.benchmarks if session is not None else []:
        groups[bench.group].append(bench)
    for row in missing:
        groups[row["group"]]  # a group where every row is missing still gets its table
    rows = []
    terminalreporter.section(f"the implementation under test vs ours and the peers ({machine()})")
    for group, benches in groups.items():
        tested = next((b for b in benches if b.extra_info.get("tested")), None)
        terminalreporter.write_line(f"\n{group}")
        terminalreporter.write_line("| implementation | mean | MB/s | tested speed ÷ its speed | notes |")
        terminalreporter.write_line("| --- | ---: | ---: | ---: | --- |")
        for row in missing:
            if row["group"] == group:
                terminalreporter.write_line(f"| {row['impl']} | missing | - | - | {row['missing']} |")
                rows.append(row)
        for bench in benches:
            mean = bench.stats.mean
            size = bench.extra_info.get("bytes")
            ratio = mean / tested.stats.mean if tested is not None else None  # ≥ 1: the tested one is faster
            speed = "-" if ratio is None else f"{ratio:.2f}x"
            notes = ", ".join(f"{k} {v}" for k, v in bench.extra_info.items() if k not in ("impl", "bytes", "tested"))
            terminalreporter.write_line(f"| {bench.extra_info.get('impl', bench.name)} | {mean:.3f} s | "
                                        f"{size / mean / 1e6:.2f} | {speed} | {notes} |" if size else
                                        f"| {bench.extra_info.get('impl', bench.name)} | {mean:.3f} s | - | "
                                        f"{speed} | {notes} |")
            rows.append({"group": group, "impl": bench.extra_info.get("impl", bench.name), "mean_s": mean,
                         "tested_speed_over_its_speed": ratio, **bench.extra_info})
    REPORT.parent.mkdir(exist_ok=True)
    atomic_write_text(REPORT, json.dumps({"machine": machine(), "results": rows}, indent=2) + "\n")
    terminalreporter.write_line(f"\nwritten to {REPORT}")
