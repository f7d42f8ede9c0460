"""The kit's own tests: collects the mutant verdicts and prints the kill rate after the run."""

from __future__ import annotations

import pytest

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
            terminalreporter.write_line(f"rejected {verdict.mutant} [{verdict.component}] by {verdict.detail}")
    killed = sum(v.killed for v in verdicts)
    terminalreporter.write_line(f"mutants rejected: {killed}/{len(verdicts)} ({100 * killed / len(verdicts):.0f}%)",
                                bold=True, green=killed == len(verdicts), red=killed < len(verdicts))
