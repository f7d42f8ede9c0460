"""Run the conformance suite in a subprocess, as a user would, and read its JSON report; or (``pytest_forked``)
in a process forked from a server that has imported torch and the kit already."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.harness import multiprocess
from tests.harness.helpers import REPO

# What the fork server imports once, so that a forked run starts without it (~3.5 s of a run's ~5 s of start on
# 2 cores): the ranks' modules (the server is the one multiprocessing keeps per process; tests/harness/multiprocess.py
# starts it with its own list when it comes first), pytest, and the reference with the mutants (tests.kit.mutants).
FORK_PRELOAD = [*multiprocess.PRELOAD, "pytest", "tests.kit.mutants"]


@dataclass
class SuiteRun:
    returncode: int
    output: str
    report: dict | None


def run_suite(tmp_path: Path, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> SuiteRun:
    """``env``: variables set for the run, over this process's environment."""
    report = tmp_path / "compliance.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/conformance", "-p", "no:cacheprovider",
         "--report-json", str(report), *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env=os.environ | (env or {}),
    )
    return SuiteRun(done.returncode, done.stdout + done.stderr,
                    json.loads(report.read_text()) if report.exists() else None)


def pytest_forked(argv: list[str], log: Path, env: dict[str, str], timeout: float) -> int | None:
    """``pytest argv`` in a process forked from the fork server, from the repository root with exactly ``env``, its
    output in ``log``; its exit code (negative: killed by that signal), None if it ran past ``timeout`` seconds (it
    is killed). For runs many times over (the mutants): what a subprocess would import, the server has."""
    context = multiprocessing.get_context(multiprocess.START_METHOD)
    if multiprocess.START_METHOD == "forkserver":
        context.set_forkserver_preload(FORK_PRELOAD)  # takes effect if this starts the server
    _exit_code_file(log).unlink(missing_ok=True)  # a file left by an earlier run on the same log is not this run's
    process = context.Process(target=_pytest_main, args=(argv, str(log), env), name="conformance suite")
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        return None
    # The child's own word first: the forkserver sometimes loses a child's exit status, and multiprocessing then
    # reports 255 (popen_forkserver.Popen.poll) for a run that printed its whole summary and returned 1.
    reported = _exit_code_file(log)
    return int(reported.read_text()) if reported.exists() else process.exitcode


def _exit_code_file(log: Path) -> Path:
    return log.with_name(log.name + ".exit-code")


def _pytest_main(argv: list[str], log: str, env: dict[str, str]) -> None:
    """In the forked process: the environment, directory and output a subprocess would have, then pytest."""
    import pytest

    os.environ.clear()
    os.environ.update(env)
    # The interpreter read these at its start, in the server: as they would be in a fresh one.
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    sys.pycache_prefix = env.get("PYTHONPYCACHEPREFIX")
    os.chdir(REPO)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    code = pytest.main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    _exit_code_file(Path(log)).write_text(str(int(code)))
    os._exit(int(code))
