"""The kit's pytest plugin: implementation selection, markers, and the compliance report.

Loaded by tests/conftest.py. Conformance tests (under tests/conformance/<area>/) carry one
``component(name)`` marker and a docstring stating the spec clause they check; the run ends
with a component x {pass, fail, missing, xfail, skip, error} matrix, as text and as JSON.

Two levels of verdict. A check is at the ``course`` level (what the handouts and the course's adapter interface
require: a FAIL there means the course would call the code wrong) unless it carries the ``strict`` marker (the
kit's stronger contract: error types and messages, extra dtypes, interface extras). The matrix shows a verdict
per level; ``--gate`` picks the level whose FAILs are pytest failures and set the exit code. Below the gate, a
strict FAIL is still reported (matrix, findings, JSON) but counted as "strict failed", as a MISSING test is
counted as "missing".
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import torch

from spec import COMPONENTS, ComponentMissing
from spec.loading import ENV_VAR, REFERENCE, Bundle, load_implementation
from tests.harness.expected_failures import ExpectedFailure, read_expected_failures
from tests.harness.oracles import OracleError

LEVELS = ("course", "strict")  # each level's checks include the ones of the levels before it
DEFAULT_TEST_TIMEOUT_S = 900.0  # generous: the slowest tests (a mutant's whole suite run) take minutes on 2 cores
TIMEOUT_REPEAT_S = 5.0
UNINTERRUPTIBLE_GRACE_S = 60.0  # past the timeout (at most the timeout again), a worker the alarm cannot reach exits
HUNG_EXIT = 124  # that worker's exit code
REPORT_EVERY_S = 2.0  # the JSON report is rewritten at most this often during the run, and at its end
# Under pytest-xdist (-n 1: crash isolation), every crash costs a new worker (seconds): a member that crashes every
# test of a large component still gets a complete report.
CRASHES_BEFORE_GIVING_UP = 10_000
MISSING_EXIT = 6  # the run's exit code when nothing failed but something is missing (pytest's own codes stop at 5)
MARKERS = {
    "component(name)": "the spec component a conformance test checks (drives the compliance matrix)",
    "strict": "a check of the kit's stricter contract (error types, messages, extras), beyond what the course requires",
    "triton": "runs a Triton kernel: without --device cuda, on CPU tensors through Triton's interpreter, which the "
              "course never asks for (strict level there)",
    "gpu": "needs a CUDA device (run with --device cuda)",
    "multi_gpu(n)": "needs n CUDA devices",
    "distributed": "spawns several processes",
    "slow": "takes more than a few seconds on a 2-core CPU",
    "e2e": "end-to-end run of a program",
}
bundle_key = pytest.StashKey[Bundle]()
expected_key = pytest.StashKey[list[ExpectedFailure]]()
results_key = pytest.StashKey[list["Result"]]()
notes_key = pytest.StashKey[list[str]]()  # warnings about the expected-failures file, shown with the matrix
written_key = pytest.StashKey[float]()  # when the JSON report was last rewritten (time.monotonic)


@dataclass
class Result:
    nodeid: str
    component: str
    status: str
    level: str = "course"
    clause: str = ""
    message: str = ""
    reproduce: str = ""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cs336", "CS336 spec kit")
    group.addoption("--impl", default=os.environ.get(ENV_VAR, REFERENCE),
                    help=f"implementation under test: module, module:attr or adapters:path/to/adapters.py "
                         f"(default: ${ENV_VAR}, else the reference '{REFERENCE}')")
    group.addoption("--device", default="cpu", help="torch device the conformance tests run on (cpu, cuda)")
    group.addoption("--expected-failures", type=Path, default=None,
                    help="file of known failures (overrides the implementation's own)")
    group.addoption("--component", action="append", default=[],
                    help="only run the tests of this component (repeatable)")
    group.addoption("--report-json", type=Path, default=None,
                    help="write the compliance matrix as JSON here (rewritten as the run goes: a killed run leaves "
                         "what it had, with \"complete\": false)")
    group.addoption("--gate", choices=LEVELS, default="course",
                    help="the verdict level whose FAILs fail the run: course (what the course requires) or strict "
                         "(also the kit's stricter conventions) (default %(default)s)")
    group.addoption("--test-timeout", type=float, default=DEFAULT_TEST_TIMEOUT_S, metavar="SECONDS",
                    help="a test running longer fails with a timeout and the run goes on (default %(default)g s; "
                         "0: none)")


def pytest_configure(config: pytest.Config) -> None:
    for marker, description in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {description}")
    unknown = set(config.getoption("component")) - set(COMPONENTS)
    if unknown:
        raise pytest.UsageError(f"--component {sorted(unknown)}: not spec components; the names are {list(COMPONENTS)}")
    try:
        bundle = load_implementation(config.getoption("impl"))
    except (ValueError, FileNotFoundError) as error:
        raise pytest.UsageError(str(error)) from error
    if getattr(config.option, "update_snapshots", False) and not bundle.is_reference:
        raise pytest.UsageError(f"goldens are generated from the reference implementation only, not from {bundle.label!r}")
    config.stash[bundle_key] = bundle
    config.stash[expected_key] = read_expected_failures(config.getoption("expected_failures") or bundle.expected_failures)
    config.stash[results_key] = []
    config.stash[notes_key] = []
    recorder = Recorder(config)
    config.pluginmanager.register(recorder, "cs336-recorder")
    config.pluginmanager.register(CudaGuard(config), "cs336-cuda-guard")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(config, recorder), "cs336-xdist")
        if config.getoption("maxworkerrestart", None) is None:  # xdist's default, 4 per worker, would end the run
            config.option.maxworkerrestart = CRASHES_BEFORE_GIVING_UP


def pytest_report_header(config: pytest.Config) -> list[str]:
    bundle = config.stash[bundle_key]
    return [
        f"implementation under test: {bundle.name} {bundle.version} (--impl {bundle.label})",
        (f"torch {torch.__version__}, triton {_version('triton')}, CUDA {torch.version.cuda or 'none'}, "
         f"device {_device_name(config.getoption('device'))}, python {platform.python_version()}"),
    ]


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _device_name(device: str) -> str:
    # CUDA is touched only when the user asked for it.
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


@pytest.fixture(scope="session")
def impl(pytestconfig: pytest.Config) -> Bundle:
    """The implementation under test; ``impl.Linear`` raises ComponentMissing when absent."""
    return pytestconfig.stash[bundle_key]


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> torch.device:
    device = torch.device(pytestconfig.getoption("device"))
    if device.type == "cuda" and not torch.cuda.is_available():
        pytest.exit("--device cuda was given but CUDA is not available", returncode=4)
    return device


def component_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("component")
    return marker.args[0] if marker else None


def level_of(item: pytest.Item) -> str:
    on_cpu = not item.config.getoption("device").startswith("cuda")
    return "strict" if item.get_closest_marker("strict") or (on_cpu and item.get_closest_marker("triton")) else "course"


def is_conformance(item: pytest.Item) -> bool:
    return "conformance" in Path(str(item.path)).parts


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expected = config.stash[expected_key]
    for item in items:  # before --component deselects: an entry is stale only if it matches no test at all
        component = component_of(item)
        if is_conformance(item) and component not in COMPONENTS:
            raise pytest.UsageError(f"{item.nodeid}: a conformance test needs one component(name) marker "
                                    f"naming a spec component, got {component!r}")
        for entry in expected:
            if entry.matches(item.nodeid):
                entry.matched = True
                item.add_marker(pytest.mark.xfail(reason=f"expected failure: {entry.reason}", strict=False))
    config.stash[notes_key] += [f"stale expected-failure entry {e.pattern!r}: it matches no test"
                                for e in expected if not e.matched]
    only = set(config.getoption("component"))
    if only:
        config.hook.pytest_deselected(items=[item for item in items if component_of(item) not in only])
        items[:] = [item for item in items if component_of(item) in only]
    if not config.getoption("device").startswith("cuda"):
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(pytest.mark.skip(reason="needs a GPU: run with --device cuda"))


class TimeLimitExceeded(BaseException):
    """Raised into a test that ran past --test-timeout. A BaseException on purpose: Hypothesis shrinks a failing
    example on any Exception (pytest-timeout's Failed included), calling the hanging member again with no alarm
    left; this one it lets through, and so does code under test that catches Exception."""


def is_xdist_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker (its controller records results and prints the report)."""
    return hasattr(config, "workerinput")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """The per-test timeout: SIGALRM, again every TIMEOUT_REPEAT_S should the first be swallowed. It interrupts
    Python code (a sleep, a loop, a wait on processes) but not a hang inside one C call: under pytest-xdist a
    watchdog thread ends the worker a grace period later, the test is a CRASH FAIL and a new worker runs the rest."""
    seconds = item.config.getoption("test_timeout")
    if seconds <= 0 or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return (yield)

    def expire(signum, frame):
        raise TimeLimitExceeded(f"Timeout: the test ran past --test-timeout {seconds:g} s (a hang in the implementation?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, TIMEOUT_REPEAT_S)
    watchdog = None
    if is_xdist_worker(item.config):
        watchdog = threading.Timer(seconds + min(seconds, UNINTERRUPTIBLE_GRACE_S), os._exit, args=(HUNG_EXIT,))
        watchdog.daemon = True
        watchdog.start()
    try:
        return (yield)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Judges a conformance test's report: its matrix status rides on the report (``kit_result``), which the
    Recorder reads, here or, under pytest-xdist, on the controller (a report's attributes survive the trip)."""
    report = yield
    component = component_of(item)
    if component is None:
        return report
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    level = level_of(item)
    reproduce = dict(item.user_properties).get("reproduce", "") or (
        f"python -m pytest '{item.nodeid}' --impl {item.config.stash[bundle_key].label}"
        + " --gate strict" * (level == "strict"))
    # On every phase's report: should the interpreter die later in this test, the crash is still this test's.
    report.kit_test = {"component": component, "level": level, "clause": doc.strip().split("\n\n")[0],
                       "reproduce": reproduce}
    missing = call.excinfo is not None and call.excinfo.errisinstance(ComponentMissing)
    if missing and not hasattr(report, "wasxfail"):
        report.longrepr = f"MISSING: {call.excinfo.value}"
    if call.excinfo is not None and call.excinfo.errisinstance(OracleError):
        report.longrepr = f"KIT ERROR: {call.excinfo.value}"
        status = "error"
    else:
        status = _status(report, missing)
    if status is None:
        return report
    message = _short_message(report) if status in ("fail", "missing", "skip", "xfail", "error") else ""
    report.kit_result = asdict(Result(item.nodeid, component, status, level, report.kit_test["clause"], message,
                                      reproduce if status == "fail" else ""))
    if status == "fail" and LEVELS.index(level) > LEVELS.index(item.config.getoption("gate")):
        # A FAIL above the gate: reported, not a pytest failure (the summary says "strict failed", -x goes on).
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"FAIL ({level}): {message}")
        report.kit_level_fail = level
    if status == "missing":
        # Not a pytest failure: the summary line counts it as "missing", -x goes on, no traceback is printed, and
        # the exit code says "missing" only when nothing failed (pytest_sessionfinish).
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"MISSING: {call.excinfo.value}")
        report.kit_missing = True
    return report


class Recorder:
    """Collects the results from the reports, where the run is reported: in the one process of a plain run, or on
    pytest-xdist's controller, whose workers (``-n 1``: crash isolation) run the tests. A worker that dies (a
    segfault, ``os._exit``) takes its test with it; xdist reports that test failed and starts a new worker for the
    rest, and the Recorder names the test's component from the reports of its earlier phases."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.tests: dict[str, dict] = {}  # node id -> kit_test, for the tests whose reports arrived

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if is_xdist_worker(self.config):
            return
        if hasattr(report, "kit_test"):
            self.tests[report.nodeid] = report.kit_test
        if hasattr(report, "kit_result"):
            result = Result(**report.kit_result)
            if result.status == "pass" and hasattr(report, "wasxfail"):
                self.config.stash[notes_key].append(f"stale expected-failure entry: {result.nodeid} passes")
        elif report.failed and report.nodeid in self.tests:
            # xdist's report for a test whose worker died in it (the kit judged no phase of it past setup). A crash
            # fails at every level, the course's too.
            test = self.tests[report.nodeid]
            result = Result(report.nodeid, test["component"], "fail", "course", test["clause"],
                            "CRASH: the interpreter running this test died (a segfault, os._exit, or a hang past "
                            "--test-timeout that no signal could interrupt); a new pytest-xdist worker ran the tests "
                            "after it", test["reproduce"])
        else:
            return
        self.config.stash[results_key].append(result)
        write_report_json(self.config, complete=False)


# CUDA errors after which the process's CUDA context is unusable: every later CUDA call fails with them.
CONTEXT_LOST = ("device-side assert triggered", "illegal memory access", "unspecified launch failure",
                "misaligned address", "illegal instruction")
CONTEXT_LOST_EXIT = 86  # a worker's exit code when it leaves because its CUDA context is lost


class CudaGuard:
    """A test's asynchronous CUDA errors surface in that test (a synchronize after its body), and a test that loses
    the CUDA context (a device-side assert, an illegal memory access) does not take every later test with it: under
    pytest-xdist its worker leaves before the next test, which XdistHooks gives to a new worker; without workers a
    warning says that the tests after it are unreliable. Judged by the error's text, so that on a CPU the kit's own
    test can stage a lost context (tests/kit/misbehaving.py)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.lost_in: str | None = None  # the test in which this process lost its CUDA context

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        result = yield
        if torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> None:
        if call.excinfo is not None and self.lost_in is None and any(
                text in str(call.excinfo.value) for text in CONTEXT_LOST):
            self.lost_in = item.nodeid
            if not is_xdist_worker(self.config):
                self.config.stash[notes_key].append(
                    f"the CUDA context was lost in {item.nodeid}: the tests after it may fail with its error "
                    f"(run with -n 1 to give them a fresh process)")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem) -> None:
        if self.lost_in is not None and is_xdist_worker(self.config):
            # Every report of the earlier test has reached the controller (execnet sends synchronously).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(CONTEXT_LOST_EXIT)


class XdistHooks:
    """Registered with pytest-xdist only (its hooks are unknown without it)."""

    def __init__(self, config: pytest.Config, recorder: Recorder):
        self.config = config
        self.recorder = recorder
        self.rescheduled: set[str] = set()

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched) -> None:
        """A worker that died before a test began (CudaGuard's exit after a lost CUDA context) did not run it: a
        new worker does. Once per test, so that a worker dying in a test's very start cannot loop."""
        if crashitem not in self.recorder.tests and crashitem not in self.rescheduled:
            self.rescheduled.add(crashitem)
            sched.mark_test_pending(crashitem)
            report.outcome = "rerun"  # neither passed nor failed; the Recorder and the summary leave it out
            report.kit_rescheduled = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        # The expected-failures notes made by a worker's collection (the controller collects nothing).
        notes = self.config.stash[notes_key]
        notes += [n for n in getattr(node, "workeroutput", {}).get("kit_notes", []) if n not in notes]


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    if getattr(report, "kit_missing", False):
        return "missing", "M", "MISSING"
    if getattr(report, "kit_rescheduled", False):
        return "", "", ""
    if getattr(report, "kit_level_fail", None):
        return f"{report.kit_level_fail} failed", "s", f"FAIL ({report.kit_level_fail})"
    return None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Exit codes: 0 every test passed at the gate's level; 1 a test failed (a FAIL at the gate's level, or a KIT
    ERROR); MISSING_EXIT nothing failed but some components (or features) are missing; pytest's own for usage
    errors (4) and the rest."""
    if is_xdist_worker(session.config):  # its notes go to the controller
        session.config.workeroutput["kit_notes"] = session.config.stash[notes_key]
    if exitstatus == pytest.ExitCode.OK and any(r.status == "missing" for r in session.config.stash[results_key]):
        session.exitstatus = MISSING_EXIT


def _status(report: pytest.TestReport, missing: bool) -> str | None:
    """The matrix status once a test's outcome is known, else None (setup/teardown that passed)."""
    if hasattr(report, "wasxfail"):
        return "xfail" if report.skipped else "pass"
    if report.failed:
        return "missing" if missing else "fail"
    if report.skipped:
        return "skip"
    return "pass" if report.when == "call" else None


def _short_message(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    if hasattr(report, "wasxfail"):
        return report.wasxfail
    crash = getattr(report.longrepr, "reprcrash", None)
    return crash.message if crash is not None else str(report.longrepr)


# "fail" counts course-level FAILs, "strict_fail" strict-level ones; error: the kit could not judge the test (its
# oracle broke, tests/harness/oracles.py): neither pass nor fail.
COLUMNS = ("pass", "fail", "strict_fail", "missing", "xfail", "skip", "error")


def column(result: Result) -> str:
    return "strict_fail" if result.status == "fail" and result.level == "strict" else result.status


def matrix(results: list[Result], gate: str) -> dict[str, dict[str, int | str]]:
    """Per component: the count of each column, the verdict at each level, and "status", the gate level's."""
    counts: dict[str, Counter] = {name: Counter() for name in COMPONENTS}
    for result in results:
        counts[result.component][column(result)] += 1
    rows = {}
    for name, count in counts.items():
        row: dict[str, int | str] = {c: count[c] for c in COLUMNS}
        for level in LEVELS:
            fails = sum(count[c] for c in ("fail", "strict_fail")[:LEVELS.index(level) + 1])
            # PARTIAL: some tests pass and others need what the implementation lacks (a course
            # adapters file cannot expose initialization, for one); MISSING: nothing of it passes.
            row[level] = ("FAIL" if fails else
                          "PARTIAL" if count["missing"] and count["pass"] else "MISSING" if count["missing"] else
                          "PASS" if count["pass"] or count["xfail"] else "KIT ERROR" if count["error"] else
                          "SKIP" if count["skip"] else "NOT RUN")
        row["status"] = row[gate]
        rows[name] = row
    return rows


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash[results_key]
    if not results:
        return
    gate = config.getoption("gate")
    bundle, rows = config.stash[bundle_key], matrix(results, gate)
    write = terminalreporter.write_line
    terminalreporter.section(f"compliance matrix: {bundle.name} {bundle.version} (--impl {bundle.label})")
    write(pytest_report_header(config)[1])
    write(f"verdicts at two levels: course (what the course requires), strict (also the kit's conventions); "
          f"--gate {gate} sets the exit code")
    titles = {c: "fail(strict)" if c == "strict_fail" else c for c in COLUMNS}
    widths = {c: max(9, len(titles[c]) + 2) for c in COLUMNS}

    def line(first: str, cells: dict, verdicts: str = "") -> str:
        return f"{first:32}" + "".join(f"{cells[c]:>{widths[c]}}" for c in COLUMNS) + verdicts

    write(line("component", titles, "".join(f"   {level:10}" for level in LEVELS)))
    for name, row in rows.items():  # the components this run tested (all of them in the JSON report)
        if row["status"] != "NOT RUN":
            write(line(name, row, "".join(f"   {row[level]:10}" for level in LEVELS)))
    write(line("TOTAL", Counter(column(r) for r in results)))
    # Missing tests share their reason: one line per component and reason, not one per test.
    missing = Counter((r.component, r.message) for r in results if r.status == "missing")
    for (component, message), count in missing.items():
        write(f"\nMISSING [{component}] {count} test{'s' * (count > 1)}: {message.removeprefix('MISSING: ')}")
    # Skips too (GPU-only tests on a CPU, say): one line per reason, with the components it covers.
    skipped: dict[str, Counter] = {}
    for result in results:
        if result.status == "skip":
            skipped.setdefault(result.message, Counter())[result.component] += 1
    for message, components in skipped.items():
        count, where = sum(components.values()), ", ".join(f"{c} {n}" for c, n in components.items())
        write(f"\nSKIP {count} test{'s' * (count > 1)}: {message} ({where})")
    # Failures grouped by their cause (component and first line of the message): one finding per cause, with its
    # count, the first test's clause and one reproduce command; the other tests of the group are listed by name.
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for result in sorted(results, key=lambda r: LEVELS.index(r.level)):  # course-level findings first
        if result.status in ("fail", "error"):
            cause = (result.message.splitlines() or [""])[0]
            groups.setdefault((column(result), result.component, cause), []).append(result)
    for (status, component, _), group in groups.items():
        first, count = group[0], len(group)
        label = {"error": "KIT ERROR", "fail": "FAIL", "strict_fail": "FAIL (strict)"}[status]
        write(f"\n{label} [{component}] {first.nodeid}" + (f" (and {count - 1} more with this cause)" if count > 1 else ""))
        if first.clause and status == "fail":
            write(f"  spec: {first.clause}")
        write(f"  {first.message}")
        if first.reproduce and status == "fail":
            write(f"  reproduce: {first.reproduce}")
        for other in group[1:]:
            write(f"  also: {other.nodeid}")
    for note in config.stash[notes_key]:
        write(f"\nWARNING: {note}")
    path = write_report_json(config, complete=True)
    if path:
        write(f"\ncompliance matrix written to {path}")



def write_report_json(config: pytest.Config, complete: bool) -> Path | None:
    """The JSON report as it stands (atomically replaced); during the run at most every REPORT_EVERY_S."""
    path = config.getoption("report_json")
    if not path or (not complete and time.monotonic() - config.stash.get(written_key, 0.0) < REPORT_EVERY_S):
        return None
    config.stash[written_key] = time.monotonic()
    results, bundle = config.stash[results_key], config.stash[bundle_key]
    totals, gate = Counter(column(r) for r in results), config.getoption("gate")
    report = {
        "implementation": {"label": bundle.label, "name": bundle.name, "version": bundle.version},
        "environment": {"torch": torch.__version__, "triton": _version("triton"), "cuda": torch.version.cuda,
                        "device": _device_name(config.getoption("device")), "python": sys.version.split()[0]},
        "complete": complete,  # false: the run was still going (or was killed) when this was written
        "gate": gate,  # each row's "status" is its verdict at this level; "course" and "strict" are both levels'
        "components": matrix(results, gate),
        "totals": {c: totals[c] for c in COLUMNS},
        "warnings": config.stash[notes_key],
        "results": [asdict(r) for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(partial, path)
    return path

