"""The compliance report: partial implementations, expected failures, the header."""

import re
import subprocess
import sys

from spec import COMPONENTS
from tests.harness.helpers import REPO
from tests.harness.plugin import MISSING_EXIT
from tests.kit.run_suite import run_suite

TOY = "tests.kit.toy_partial"
PROVIDED = {"softmax", "silu", "cross_entropy"}


def test_partial_package_shows_missing_components_without_crashing(tmp_path):
    run = run_suite(tmp_path, "--impl", TOY, "-x")  # -x: a missing component is not a failure, the run goes on
    assert run.returncode == MISSING_EXIT, run.output  # nothing failed, something is missing
    totals = run.report["totals"]
    summary = run.output.strip().splitlines()[-1]  # pytest's summary line agrees with the matrix
    assert f"{totals['pass']} passed" in summary and f"{totals['missing']} missing" in summary, summary
    assert "failed" not in summary and "Traceback" not in run.output, summary
    assert "implementation under test: toy partial package 0.0.1" in run.output
    assert "compliance matrix: toy partial package" in run.output
    rows = run.report["components"]
    assert {name for name, row in rows.items() if row["status"] == "PASS"} == PROVIDED, rows
    assert {name for name, row in rows.items() if row["status"] == "MISSING"} == set(COMPONENTS) - PROVIDED, rows
    assert all(rows[name]["pass"] > 0 and rows[name]["missing"] == 0 for name in PROVIDED)


def test_expected_failures_become_xfail_and_stale_entries_warn(tmp_path):
    known = tmp_path / "expected_failures.txt"
    known.write_text("tests/conformance/nn/test_goldens.py::test_golden[linear]  # not written yet\n"
                     "tests/conformance/nn/test_goldens.py::test_golden[softmax]  # but it passes\n"
                     "tests/conformance/test_nothing.py::*  # matches no test\n")
    run = run_suite(tmp_path, "--impl", TOY, "--component", "Linear", "--component", "softmax",
                    "--expected-failures", str(known))
    linear = run.report["components"]["Linear"]
    assert linear["xfail"] == 1 and linear["missing"] >= 1, linear
    assert run.report["warnings"] == [
        "stale expected-failure entry 'tests/conformance/test_nothing.py::*': it matches no test",
        "stale expected-failure entry: tests/conformance/nn/test_goldens.py::test_golden[softmax] passes",
    ]
    assert "WARNING: stale expected-failure entry 'tests/conformance/test_nothing.py::*'" in run.output


def test_unknown_implementation_is_a_clear_usage_error(tmp_path):
    run = run_suite(tmp_path, "--impl", "no_such_package_here")
    assert run.returncode == 4, run.output
    assert "cannot import implementation module 'no_such_package_here'" in run.output


def test_quiet_report_rows_of_the_run_and_skips_by_reason(tmp_path):
    """--component shows only its rows; skips are one line per reason with the components they cover."""
    run = run_suite(tmp_path, "--component", "RMSNormTriton", "--component", "softmax")
    matrix = run.output[run.output.index("compliance matrix:"):]
    lines = matrix.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("component"))
    total = next(i for i, line in enumerate(lines) if line.startswith("TOTAL"))
    assert [line.split()[0] for line in lines[header + 1:total]] == ["softmax", "RMSNormTriton"], matrix
    skips = [line for line in matrix.splitlines() if line.startswith("SKIP")]
    assert len(skips) == 1 and "needs a GPU" in skips[0] and "(RMSNormTriton " in skips[0], skips
    assert set(run.report["components"]) == set(COMPONENTS)  # the JSON keeps every row for gates


def test_failures_of_one_cause_are_one_finding(tmp_path):
    """Six tests failing the same way (a hanging softmax) are one finding with its count and one reproduce line; the
    implementation under test prints as one line (Hypothesis shows it beside a falsifying example)."""
    run = run_suite(tmp_path, "--impl", "tests.kit.misbehaving:hanging", "--component", "softmax",
                    "--test-timeout", "1")
    findings = [line for line in run.output.splitlines() if line.startswith("FAIL [softmax]")]
    assert len(findings) == 1 and findings[0].endswith("(and 5 more with this cause)"), findings
    assert run.output.count("  reproduce: ") == 1 and run.output.count("  also: ") == 5, run.output[-3000:]
    assert "<implementation misbehaving: softmax hangs (--impl tests.kit.misbehaving:hanging)>" in run.output


def test_a_strict_only_failure_fails_the_strict_gate_alone(tmp_path):
    """An Embedding that lets −1 wrap around instead of raising breaks only a kit convention: at --gate course (the
    default) the run passes, pytest's summary counts it "strict failed" and the matrix says course PASS, strict
    FAIL; at --gate strict the same run fails with exit code 1. Both runs report the same rows."""
    args = ("--impl", "tests.kit.mutants:embedding_unchecked", "--component", "Embedding")
    course = run_suite(tmp_path / "course", *args)
    strict = run_suite(tmp_path / "strict", *args, "--gate", "strict")
    assert course.returncode == 0 and strict.returncode == 1, (course.output[-2000:], strict.output[-2000:])
    for run, gate in ((course, "course"), (strict, "strict")):
        row = run.report["components"]["Embedding"]
        assert (row["fail"], row["course"], row["strict"], row["status"]) == (0, "PASS", "FAIL", row[gate]), row
        assert row["strict_fail"] > 0 and run.report["gate"] == gate, run.report
        failed = [r for r in run.report["results"] if r["status"] == "fail"]
        assert failed and all(r["level"] == "strict" and r["reproduce"].endswith("--gate strict") for r in failed)
    summary = course.output.strip().splitlines()[-1]
    assert f"{course.report['components']['Embedding']['strict_fail']} strict failed" in summary, summary
    assert " failed" not in summary.replace("strict failed", ""), summary
    assert "FAIL (strict) [Embedding]" in course.output, course.output[-3000:]
    assert re.search(r"\b\d+ failed\b", strict.output.strip().splitlines()[-1]), strict.output[-500:]


def test_a_golden_failure_says_what_the_case_exercises(tmp_path):
    """A failed golden case shows its one-line description, its inputs' shapes and a command that loads them, and
    that command works."""
    run = run_suite(tmp_path, "--impl", "tests.kit.mutants:rope_half_split", "--component", "RotaryEmbedding",
                    "-k", "test_golden")
    assert run.returncode == 1, run.output[-2000:]
    assert "the case: RoPE of (batch, heads, seq, d_k) inputs at random, non-contiguous positions" in run.output
    assert "inputs: x (2, 3, 9, 16) float32, positions (2, 1, 9) int64" in run.output, run.output[-3000:]
    command = re.search(r'load them: python -c "(.*)"', run.output).group(1)
    loaded = subprocess.run([sys.executable, "-c", command], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0 and "'positions': tensor(" in loaded.stdout, loaded.stdout[-500:] + loaded.stderr
