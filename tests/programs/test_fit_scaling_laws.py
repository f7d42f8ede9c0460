"""fit-scaling-laws end to end on the handout's runs: the printed answers, results.json, the plots, a rerun."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math

import numpy as np
import pytest

from impl.programs import fit_scaling_laws
from impl.programs.fit_scaling_laws import DEFAULT_RUNS, OUTPUTS

PNG = b"\x89PNG\r\n\x1a\n"


def run_program(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert fit_scaling_laws.main(list(argv)) == 0
    return out.getvalue()


def log_log_fit(x, y) -> tuple[float, float]:
    """(k, a) of ln y = ln k + a ln x in closed form (what approach 2 must print)."""
    u, v = np.log(x), np.log(y)
    a = float(((u - u.mean()) * (v - v.mean())).sum() / ((u - u.mean()) ** 2).sum())
    return math.exp(v.mean() - a * u.mean()), a


@pytest.fixture(scope="module")
def handout(tmp_path_factory):
    out = tmp_path_factory.mktemp("scaling")
    printed = run_program("--out", str(out), "--samples", "200", "--loss-law-samples", "3")
    return out, printed, json.loads((out / "results.json").read_text())


def test_the_handouts_answers_with_intervals(handout):
    """N_opt and D_opt at 1e23 and 1e24 FLOPs: the power laws through each budget's run of lowest loss, fitted in
    log-log space, each inside its bootstrap interval; printed as in results.json."""
    _, printed, results = handout
    runs = json.loads(DEFAULT_RUNS.read_text())
    budgets = sorted({r["compute_budget"] for r in runs})
    best = [min((r for r in runs if r["compute_budget"] == c), key=lambda r: r["final_loss"]) for c in budgets]
    c, n = np.array(budgets), np.array([r["parameters"] for r in best])
    (k_n, a), (k_d, b) = log_log_fit(c, n), log_log_fit(c, c / (6 * n))
    rows = results["approach_2"]["targets"]
    assert [row["compute"] for row in rows] == [1e23, 1e24]
    for row in rows:
        for name, expected in (("n_opt", k_n * row["compute"] ** a), ("d_opt", k_d * row["compute"] ** b)):
            value = row[name]
            assert math.isclose(value["estimate"], expected, rel_tol=1e-9), (name, value, expected)
            assert value["low"] < value["estimate"] < value["high"], value
            assert f"{value['estimate']:.3g} [{value['low']:.3g}, {value['high']:.3g}]" in printed
    assert math.isclose(results["approach_2"]["a"]["estimate"], a, rel_tol=1e-9)
    assert "C = 1e+23 FLOPs: N_opt = 7.01e+10" in printed and "C = 1e+24 FLOPs: N_opt = 2.06e+11" in printed


def test_approach_3_on_the_handout_runs(handout):
    """The handout's runs lie on one law: approach 3 finds it, and its N_opt(C) = G (C/6)^(β/(α+β)); the noise-free
    runs give intervals of width 0, which the program says."""
    _, printed, results = handout
    three = results["approach_3"]
    law = [three[name]["estimate"] for name in ("E", "A", "B", "alpha", "beta")]
    np.testing.assert_allclose(law, [2.69, 1606.4, 3210.7, 0.34, 0.36], rtol=1e-5)
    _, big_a, big_b, alpha, beta = law
    g = (alpha * big_a / (beta * big_b)) ** (1 / (alpha + beta))
    for row in three["targets"]:
        assert math.isclose(row["n_opt"]["estimate"], g * (row["compute"] / 6) ** (beta / (alpha + beta)),
                            rel_tol=1e-9)
        assert math.isclose(6 * row["n_opt"]["estimate"] * row["d_opt"]["estimate"], row["compute"], rel_tol=1e-9)
    assert "intervals of width 0" in printed


def test_plots_are_pngs(handout):
    """n_opt.png, d_opt.png and isoflops.png are whole PNG files, no temp file beside them."""
    out, printed, _ = handout
    for name in OUTPUTS[1:]:
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 20_000, name
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    assert f"wrote {out}/" in printed


def test_a_rerun_removes_a_killed_runs_temp_files_and_uses_the_parabola(handout, tmp_path):
    """A temp file of a killed run is removed; --method parabola and other targets: the vertex's answers."""
    (tmp_path / ".n_opt.png.x1y2.tmp").write_bytes(b"half a png")
    printed = run_program("--out", str(tmp_path), "--method", "parabola", "--targets", "1e22", "--samples", "20",
                          "--loss-law-samples", "0")
    assert not list(tmp_path.glob("*.tmp"))
    results = json.loads((tmp_path / "results.json").read_text())
    assert "approach_3" not in results and results["method"] == "parabola"
    # The vertices of the noise-free profiles nearly follow the law's exponent β/(α+β) = 0.514.
    assert abs(results["approach_2"]["a"]["estimate"] - 0.36 / 0.70) < 0.01, results["approach_2"]["a"]
    assert "C = 1e+22 FLOPs" in printed


def test_resamples_without_an_optimum_are_counted_and_left_out_of_the_intervals():
    """A resample whose statistic has a NaN (approach 3: a law with α or β <= 0, no compute-optimal size) is
    counted, and each element's interval is the percentiles of the other resamples' values (numpy's nanquantile on
    the same draws); an element defined in every resample keeps the plain bootstrap's interval."""
    runs = json.loads(DEFAULT_RUNS.read_text())
    mean = float(np.mean([r["final_loss"] for r in runs]))
    draws = []

    def statistic(resample):
        value = float(np.mean([r["final_loss"] for r in resample]))
        draws.append(value)
        return [value, value if value <= mean else math.nan]

    estimate, low, high, undefined = fit_scaling_laws.bootstrapped(runs, statistic, 200,
                                                                   argparse.Namespace(level=0.9, seed=3), "test")
    resampled = np.array(draws[1:])  # draws[0]: the estimate
    defined = resampled[resampled <= mean]
    assert estimate.tolist() == [mean, mean] and 0 < undefined == resampled.size - defined.size < 200
    assert np.allclose([low[0], high[0]], np.quantile(resampled, [0.05, 0.95]), rtol=1e-12)
    assert np.allclose([low[1], high[1]], np.quantile(defined, [0.05, 0.95]), rtol=1e-12)
