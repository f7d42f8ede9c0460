"""Conformance of Chinchilla's approach 2 (spec/scaling.py; handout A3 §2.1): isoflop_minima and fit_power_law.

Oracles: the run of lowest loss per budget found by plain Python; scipy's ``curve_fit`` for the parabola of each
profile and for the line in log-log space; the closed-form least-squares slope and intercept; runs drawn from a law
whose optimum is known in closed form. Properties (hypothesis): the minima do not depend on the order of the runs;
points on any power law give it back.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.conformance.scaling.laws import (CHINCHILLA, argmin_oracle, handout_runs, law_runs, log_log_oracle,
                                            optimum_oracle)
from tests.harness.oracles import oracle

PROPERTY = settings(max_examples=40, deadline=None)


def as_arrays(result, length: int) -> list[np.ndarray]:
    budgets, n_opt, d_opt = (np.asarray(v, dtype=np.float64) for v in result)
    assert budgets.shape == n_opt.shape == d_opt.shape == (length,), [v.shape for v in (budgets, n_opt, d_opt)]
    return [budgets, n_opt, d_opt]


@pytest.mark.component("isoflop_minima")
def test_argmin_minima_of_the_handout_runs(impl):
    """One entry per budget, ascending; N_opt is the parameters of the run of lowest final loss among the budget's
    runs; D_opt = C / (6 N_opt) (the handout's method, on its data)."""
    expected = argmin_oracle(handout_runs())
    budgets, n_opt, d_opt = as_arrays(impl.isoflop_minima(handout_runs()), len(expected))
    assert budgets.tolist() == list(expected)
    assert n_opt.tolist() == list(expected.values())
    np.testing.assert_allclose(d_opt, budgets / (6 * n_opt), rtol=1e-12)


@pytest.mark.component("isoflop_minima")
def test_argmin_is_the_default_method(impl):
    """Without ``method`` the minima are the handout's runs of lowest loss."""
    default = as_arrays(impl.isoflop_minima(handout_runs()), 9)
    chosen = as_arrays(impl.isoflop_minima(handout_runs(), method="argmin"), 9)
    assert all(np.array_equal(a, b) for a, b in zip(default, chosen))


@pytest.mark.component("isoflop_minima")
def test_minima_of_a_known_law(impl):
    """Runs of Chinchilla's law at sizes N_opt(C) · 2^(k/2): the minimum of each profile is N_opt(C) of the closed
    form, and D_opt = C / 6N_opt (so that 6 N D = C)."""
    runs = law_runs()
    budgets, n_opt, d_opt = as_arrays(impl.isoflop_minima(runs), 5)
    np.testing.assert_allclose(n_opt, [optimum_oracle(CHINCHILLA, c) for c in budgets], rtol=1e-12)
    np.testing.assert_allclose(6 * n_opt * d_opt, budgets, rtol=1e-12)


@pytest.mark.component("isoflop_minima")
@PROPERTY
@given(st.permutations(range(72)))
def test_minima_do_not_depend_on_the_order_of_runs(impl, order):
    """The runs in any order give the same minima (a run's budget, not its position, puts it in a profile)."""
    runs = handout_runs()
    expected = argmin_oracle(runs)
    budgets, n_opt, _ = as_arrays(impl.isoflop_minima([runs[i] for i in order]), len(expected))
    assert budgets.tolist() == list(expected) and n_opt.tolist() == list(expected.values())


@pytest.mark.strict
@pytest.mark.component("isoflop_minima")
def test_argmin_ties_go_to_the_smaller_model(impl):
    """(strict) Two runs of one budget with the same lowest loss: the smaller N."""
    runs = [{"parameters": n, "compute_budget": 1e19, "final_loss": loss}
            for n, loss in [(3e8, 4.0), (1e8, 4.5), (2e8, 4.0), (4e8, 4.2)]]
    _, n_opt, _ = as_arrays(impl.isoflop_minima(runs), 1)
    assert n_opt.tolist() == [2e8]


def parabola_oracle(runs) -> dict[float, float]:
    """{C: exp of the vertex of the least-squares parabola in ln N}, by scipy's curve_fit on each profile."""
    with oracle("scipy.optimize.curve_fit"):
        from scipy.optimize import curve_fit

        out = {}
        for c in sorted({r["compute_budget"] for r in runs}):
            profile = [r for r in runs if r["compute_budget"] == c]
            u = np.log([r["parameters"] for r in profile])
            (p0, p1, p2), _ = curve_fit(lambda t, p0, p1, p2: p0 + p1 * t + p2 * t * t, u - 20.0,
                                        [r["final_loss"] for r in profile], p0=(1.0, 0.0, 1.0))
            out[c] = math.exp(20.0 - p1 / (2 * p2))
        return out


@pytest.mark.strict
@pytest.mark.component("isoflop_minima")
def test_parabola_minima_of_the_handout_runs(impl):
    """(strict) ``method="parabola"``: N_opt = exp(−p₁ / 2p₂) of L = p₀ + p₁ ln N + p₂ (ln N)² fitted by least
    squares to each profile; D_opt = C / 6N_opt."""
    expected = parabola_oracle(handout_runs())
    budgets, n_opt, d_opt = as_arrays(impl.isoflop_minima(handout_runs(), method="parabola"), len(expected))
    assert budgets.tolist() == list(expected)
    np.testing.assert_allclose(n_opt, list(expected.values()), rtol=1e-6)
    np.testing.assert_allclose(d_opt, budgets / (6 * n_opt), rtol=1e-12)


@pytest.mark.strict
@pytest.mark.component("isoflop_minima")
def test_parabola_of_an_exact_parabola(impl):
    """(strict) Losses on a parabola in ln N with its vertex between the sampled sizes: the vertex exactly, not the
    nearest run."""
    vertex = math.log(3.3e9)
    runs = [{"parameters": math.exp(u), "compute_budget": 1e20, "final_loss": 3.0 + 0.2 * (u - vertex) ** 2}
            for u in np.linspace(math.log(1e9), math.log(1e10), 6)]
    _, n_opt, _ = as_arrays(impl.isoflop_minima(runs, method="parabola"), 1)
    np.testing.assert_allclose(n_opt, [3.3e9], rtol=1e-9)


@pytest.mark.strict
@pytest.mark.component("isoflop_minima")
@pytest.mark.parametrize("runs, method, says", [
    ([], "argmin", "runs"),
    ([{"parameters": 1e8, "compute_budget": 1e19}], "argmin", "final_loss"),
    ([{"parameters": -1e8, "compute_budget": 1e19, "final_loss": 4.0}], "argmin", "parameters"),
    ([{"parameters": 1e8, "compute_budget": 1e19, "final_loss": float("nan")}], "argmin", "final_loss"),
    ([{"parameters": n, "compute_budget": 1e19, "final_loss": 4.0} for n in (1e8, 2e8)], "parabola", "1e+19"),
    ([{"parameters": n, "compute_budget": 1e19, "final_loss": loss} for n, loss in ((1e8, 4), (2e8, 5), (4e8, 4))],
     "parabola", "1e+19"),
    ([{"parameters": 1e8, "compute_budget": 1e19, "final_loss": 4.0}], "quadratic", "method"),
], ids=["no-runs", "missing-key", "negative-size", "nan-loss", "parabola-of-two", "parabola-maximum",
        "unknown-method"])
def test_minima_errors(impl, runs, method, says):
    """(strict) ValueError naming the problem: no runs, a missing key, a value that is not positive and finite, a
    profile without a parabola's minimum, an unknown method."""
    with pytest.raises(ValueError, match=says.replace("+", r"\+")):
        impl.isoflop_minima(runs, method=method)


# ---------------------------------------------------------------------------------------------- fit_power_law


@pytest.mark.component("fit_power_law")
@PROPERTY
@given(k=st.floats(1e-2, 1e2), a=st.floats(0.05, 1.0), log_x=st.lists(st.floats(40.0, 58.0), min_size=2, max_size=12))
def test_power_law_through_points_on_one(impl, k, a, log_x):
    """Points y = k · x^a on a power law give (k, a) back, whatever the fitting method (to float64 rounding)."""
    assume(max(log_x) - min(log_x) > 0.1)  # x spread enough to pin the exponent
    x = np.exp(log_x)
    got_k, got_a = impl.fit_power_law(x, k * x ** a)
    assert math.isclose(got_a, a, rel_tol=1e-6, abs_tol=1e-6), (got_a, a)
    assert math.isclose(got_k * 1e23 ** got_a, k * 1e23 ** a, rel_tol=1e-5), (got_k, k)


@pytest.mark.component("fit_power_law")
def test_power_law_of_a_known_laws_minima(impl):
    """The minima of Chinchilla's law follow N_opt = G (C/6)^(β/(α+β)): the fit gives a = β/(α+β) = 0.4516 and
    predicts N_opt(1e23) and N_opt(1e24) of the closed form."""
    budgets = [1e18, 1e19, 1e20, 1e21, 1e22]
    k, a = impl.fit_power_law(np.array(budgets), np.array([optimum_oracle(CHINCHILLA, c) for c in budgets]))
    assert math.isclose(a, 0.28 / 0.62, rel_tol=1e-9), a
    for c in (1e23, 1e24):
        assert math.isclose(k * c ** a, optimum_oracle(CHINCHILLA, c), rel_tol=1e-8)


@pytest.mark.strict
@pytest.mark.component("fit_power_law")
@pytest.mark.parametrize("which", ["n_opt", "d_opt"])
def test_power_law_is_least_squares_in_log_log_space(impl, which):
    """(strict) On the handout's minima (points off any one power law): ln k and a are the least-squares intercept
    and slope of ln y on ln x, as the closed form and scipy's curve_fit of a line to (ln x, ln y) give them."""
    minima = argmin_oracle(handout_runs())
    x = list(minima)
    y = list(minima.values()) if which == "n_opt" else [c / (6 * n) for c, n in minima.items()]
    k, a = impl.fit_power_law(np.array(x), np.array(y))
    closed_k, closed_a = log_log_oracle(x, y)
    with oracle("scipy.optimize.curve_fit"):
        from scipy.optimize import curve_fit

        (log_k, slope), _ = curve_fit(lambda u, c0, c1: c0 + c1 * u, np.log(x), np.log(y))
    for expected_k, expected_a in ((closed_k, closed_a), (math.exp(log_k), slope)):
        assert math.isclose(a, expected_a, rel_tol=1e-7), (a, expected_a)
        assert math.isclose(k, expected_k, rel_tol=1e-6), (k, expected_k)


@pytest.mark.strict
@pytest.mark.component("fit_power_law")
def test_power_law_weighs_every_point_alike(impl):
    """(strict) One point far above the line: least squares in log space moves the exponent by the closed form's
    amount; a fit of y itself would follow the largest y."""
    x = [1e19, 1e20, 1e21, 1e22]
    y = [1e9, 3e9, 1e10, 1e12]  # the last point 30x above the trend
    k, a = impl.fit_power_law(np.array(x), np.array(y))
    expected_k, expected_a = log_log_oracle(x, y)
    assert math.isclose(a, expected_a, rel_tol=1e-9) and math.isclose(k, expected_k, rel_tol=1e-8), (k, a)


@pytest.mark.strict
@pytest.mark.component("fit_power_law")
@pytest.mark.parametrize("x, y", [([1e19], [1e9]), ([1e19, 1e19], [1e9, 2e9]), ([1e19, 1e20], [1e9]),
                                  ([1e19, 1e20], [1e9, -2e9]), ([0.0, 1e20], [1e9, 2e9])],
                         ids=["one-point", "one-distinct-x", "lengths-differ", "negative-y", "zero-x"])
def test_power_law_errors(impl, x, y):
    """(strict) ValueError: fewer than two distinct x, arrays of different lengths, a non-positive value."""
    with pytest.raises(ValueError):
        impl.fit_power_law(np.array(x), np.array(y))
