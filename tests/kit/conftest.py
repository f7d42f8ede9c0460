"""The kit's own tests: collects the mutant verdicts and prints the kill rate after the run."""

from __future__ import annotations

import pytest

from tests.harness.plugin import LEVELS
from tests.kit.verdicts import verdicts_key


def pytest_configure(config: pytest.Config) -> None:
    config.stash[verdicts_key] = []


@pytest.fixture
def record_verdict(pytestconfig: pytest.Config):
    """Call with a Verdict; the terminal summary reports them all."""
    return pytestconfig.stash[verdicts_key].append


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    verdicts = config.stash.get(verdicts_key, [])
    if not verdicts:
        return
    terminalreporter.section("mutants (tests/kit/mutants/)")
    for verdict in verdicts:
        if not verdict.killed:
            terminalreporter.write_line(f"SURVIVED {verdict.mutant} [{verdict.component}]: {verdict.detail}")
        elif config.getoption("verbose") > 0:
            terminalreporter.write_line(f"rejected at {verdict.caught_at} {verdict.mutant} [{verdict.component}] by "
                                        f"{verdict.detail}")
    strict_only = sorted(v.mutant for v in verdicts if v.caught_at == "strict")
    if strict_only:  # mistakes the course rightly accepts: only the kit's stronger conventions reject them
        terminalreporter.write_line(f"rejected only at the strict level: {', '.join(strict_only)}")
    killed = sum(v.killed for v in verdicts)
    by_level = ", ".join(f"{sum(v.caught_at == level for v in verdicts)} at {level}" for level in LEVELS)
    terminalreporter.write_line(f"mutants rejected: {killed}/{len(verdicts)} ({100 * killed / len(verdicts):.0f}%; "
                                f"{by_level})", bold=True, green=killed == len(verdicts), red=killed < len(verdicts))
