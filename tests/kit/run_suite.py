"""Run the conformance suite in a subprocess, as a user would, and read its JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.harness.helpers import REPO


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
