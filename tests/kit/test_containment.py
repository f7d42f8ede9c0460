"""A member that hangs or kills the interpreter is contained: its tests fail with the reason, the report survives."""

from __future__ import annotations

import time

from tests.kit.run_suite import run_suite


def test_a_hanging_member_fails_its_tests_by_timeout_and_the_run_completes(tmp_path):
    start = time.monotonic()
    run = run_suite(tmp_path, "--impl", "tests.kit.misbehaving:hanging", "--component", "softmax",
                    "--component", "silu", "--test-timeout", "2")
    assert run.report is not None and run.report["complete"], run.output[-3000:]
    rows = run.report["components"]
    assert rows["softmax"]["status"] == "FAIL" and rows["silu"]["status"] == "PASS", rows
    timeouts = [r for r in run.report["results"] if r["component"] == "softmax" and r["status"] == "fail"]
    assert timeouts and all("Timeout" in r["message"] for r in timeouts), timeouts
    print(f"{len(timeouts)} hanging tests, the run took {time.monotonic() - start:.0f} s")


def test_under_xdist_a_hang_no_signal_reaches_fails_its_test_and_the_run_completes(tmp_path):
    """A hang that blocks the timeout's signal (as one inside a C call does): under pytest-xdist the worker's watchdog
    ends it once the timeout and a grace period (here the timeout again) have passed; the test is a CRASH FAIL and
    a new worker runs the rest."""
    start = time.monotonic()
    run = run_suite(tmp_path, "--impl", "tests.kit.misbehaving:hanging_deaf", "--component", "softmax",
                    "--component", "silu", "-k", "test_golden", "-n", "1", "--test-timeout", "2")
    assert run.report is not None and run.report["complete"], run.output[-3000:]
    rows = run.report["components"]
    assert rows["softmax"]["fail"] == 1 and rows["silu"]["status"] == "PASS", rows
    failed = [r for r in run.report["results"] if r["status"] == "fail"]
    assert "no signal could interrupt" in failed[0]["message"], failed
    print(f"a hang deaf to signals, at --test-timeout 2: the run took {time.monotonic() - start:.0f} s")


def test_under_xdist_a_crashing_member_fails_its_tests_and_the_run_completes(tmp_path):
    """With pytest-xdist workers (``-n 1``, as the nox sessions run the suite), each test whose interpreter dies is a
    FAIL naming the crash, a new worker runs the rest, and the matrix and the JSON report are whole."""
    start = time.monotonic()
    run = run_suite(tmp_path, "--impl", "tests.kit.misbehaving:crashing", "--component", "softmax",
                    "--component", "silu", "-n", "1")
    assert run.returncode == 1, run.output[-3000:]
    assert run.report is not None and run.report["complete"], run.output[-3000:]
    rows = run.report["components"]
    softmax = [r for r in run.report["results"] if r["component"] == "softmax"]
    assert rows["softmax"]["fail"] == len(softmax) == 6 and rows["silu"]["status"] == "PASS", rows
    assert all(r["message"].startswith("CRASH: the interpreter running this test died") for r in softmax), softmax
    assert "6 failed, 3 passed" in run.output.strip().splitlines()[-1], run.output[-500:]
    findings = [line for line in run.output.splitlines() if line.startswith("FAIL [softmax]")]
    assert len(findings) == 1 and findings[0].endswith("(and 5 more with this cause)"), findings
    print(f"6 crashing tests, each in its own worker: the run took {time.monotonic() - start:.0f} s")


def test_a_member_that_kills_the_interpreter_leaves_the_report_so_far(tmp_path):
    """Without workers (plain pytest) the crash ends the run, but the JSON report is rewritten as the run goes: what
    ran before the crash (silu's golden, which runs before softmax's) is there, marked incomplete."""
    run = run_suite(tmp_path, "--impl", "tests.kit.misbehaving:crashing", "--component", "softmax",
                    "--component", "silu")
    assert run.returncode == 139, run.output[-3000:]
    assert run.report is not None and run.report["complete"] is False, run.output[-3000:]
    assert run.report["components"]["silu"]["pass"] > 0, run.report["components"]["silu"]


def test_a_lost_cuda_context_stays_with_the_test_that_lost_it(tmp_path):
    """A member that loses the CUDA context (staged on the CPU: its later calls fail with the same error, as every
    CUDA call does) fails its own tests only: under pytest-xdist each loss ends its worker before the next test and a
    new worker runs the rest, so cross_entropy (whose tests run after softmax's) passes. Without workers the tests
    after it fail too, and a warning says why."""
    isolated = run_suite(tmp_path / "isolated", "--impl", "tests.kit.misbehaving:losing_the_context",
                         "--component", "softmax", "--component", "cross_entropy", "-n", "1")
    assert isolated.report is not None and isolated.report["complete"], isolated.output[-3000:]
    rows = isolated.report["components"]
    assert rows["softmax"]["fail"] == 6 and rows["cross_entropy"]["status"] == "PASS", rows
    assert "6 failed, 12 passed" in isolated.output.strip().splitlines()[-1], isolated.output[-500:]
    plain = run_suite(tmp_path / "plain", "--impl", "tests.kit.misbehaving:losing_the_context",
                      "--component", "softmax", "--component", "cross_entropy")
    assert plain.report["components"]["cross_entropy"]["fail"] > 0, plain.report["components"]
    assert any(w.startswith("the CUDA context was lost in ") for w in plain.report["warnings"]), plain.report
