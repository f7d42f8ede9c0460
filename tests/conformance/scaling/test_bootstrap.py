"""Conformance of bootstrap_intervals (spec/scaling.py): percentile-bootstrap intervals over runs resampled within
each compute budget. Every check is (strict): the handout asks for point predictions only.

Oracles: a statistic that records what it is handed, so that the resamples themselves are checked (each budget keeps
its count, draws are uniform with replacement) and the interval is recomputed from the recorded values by the
definition; runs drawn from a known law, whose exponent the interval of the handout's method must hold.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conformance.scaling.laws import CHINCHILLA, approach_2_exponent, law_runs

pytestmark = [pytest.mark.strict, pytest.mark.component("bootstrap_intervals")]
# Three budgets of unequal sizes, each run tagged with its id.
SIZES = {1e19: 4, 1e20: 5, 1e21: 6}
RUNS = [{"parameters": 1e8 * (i + 1), "compute_budget": c, "final_loss": 3.0 + 0.01 * i, "id": i}
        for i, c in enumerate(c for c, size in SIZES.items() for _ in range(size))]


class Recorder:
    """A statistic (mean id, mean loss) that keeps every list of runs it is handed."""

    def __init__(self):
        self.calls: list[list[dict]] = []

    def __call__(self, runs):
        self.calls.append(list(runs))
        return [np.mean([r["id"] for r in runs]), np.mean([r["final_loss"] for r in runs])]


def bootstrapped(impl, samples=400, level=0.95, seed=0):
    recorder = Recorder()
    estimate, low, high = (np.asarray(v, dtype=np.float64)
                           for v in impl.bootstrap_intervals(RUNS, recorder, samples=samples, level=level, seed=seed))
    return recorder, estimate, low, high


def test_statistic_of_the_runs_then_of_each_resample(impl):
    """(strict) ``statistic`` is called once on the runs as given (the estimate), then once per resample."""
    recorder, estimate, _, _ = bootstrapped(impl)
    assert len(recorder.calls) == 401, len(recorder.calls)
    assert [r["id"] for r in recorder.calls[0]] == [r["id"] for r in RUNS]
    np.testing.assert_allclose(estimate, Recorder()(RUNS), rtol=1e-15)


def test_resamples_keep_each_budget_and_its_count(impl):
    """(strict) Every resample holds, for each budget, as many runs as the data has, all of that budget."""
    recorder, *_ = bootstrapped(impl)
    for resample in recorder.calls[1:]:
        counts = {c: 0 for c in SIZES}
        for run in resample:
            assert run["compute_budget"] == RUNS[run["id"]]["compute_budget"], run
            counts[run["compute_budget"]] += 1
        assert counts == SIZES, counts


def test_resamples_draw_uniformly_with_replacement(impl):
    """(strict) Runs repeat within resamples, and over 400 resamples each run of a budget of n is drawn 400 times on
    average (within 6 standard deviations): uniform draws with replacement, not the data again nor a permutation."""
    recorder, *_ = bootstrapped(impl)
    with_repeats = sum(len({r["id"] for r in resample}) < len(resample) for resample in recorder.calls[1:])
    assert with_repeats > 350, f"only {with_repeats} of 400 resamples repeat a run"
    drawn = np.bincount([r["id"] for resample in recorder.calls[1:] for r in resample], minlength=len(RUNS))
    for run in RUNS:
        n = SIZES[run["compute_budget"]]
        spread = 6 * np.sqrt(400 * n * (1 / n) * (1 - 1 / n))  # binomial: 400n draws, probability 1/n each
        assert abs(drawn[run["id"]] - 400) < spread, f"run {run['id']} drawn {drawn[run['id']]} times, not ~400"


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_interval_is_the_percentiles_of_the_resampled_statistics(impl, level):
    """(strict) low, high = the (1 − level)/2 and (1 + level)/2 quantiles of the resampled statistics, element by
    element, linearly interpolated (``numpy.quantile``'s default)."""
    recorder, estimate, low, high = bootstrapped(impl, level=level)
    draws = np.array([Recorder()(resample) for resample in recorder.calls[1:]])
    expected_low, expected_high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    assert low.shape == high.shape == estimate.shape == (2,)
    np.testing.assert_allclose(low, expected_low, rtol=1e-12)
    np.testing.assert_allclose(high, expected_high, rtol=1e-12)


def test_a_float_statistic_gives_shape_one(impl):
    """(strict) A statistic that returns a float gives arrays of shape (1,)."""
    estimate, low, high = impl.bootstrap_intervals(RUNS, lambda runs: float(len(runs)), samples=5)
    assert np.shape(estimate) == np.shape(low) == np.shape(high) == (1,)
    assert np.asarray(low).tolist() == np.asarray(high).tolist() == [15.0]


def test_same_seed_same_intervals(impl):
    """(strict) Reproducible from ``seed``; another seed draws other resamples."""
    first, second, other = (bootstrapped(impl, samples=50, seed=seed)[0] for seed in (7, 7, 8))
    ids = [[[r["id"] for r in resample] for resample in recorder.calls] for recorder in (first, second, other)]
    assert ids[0] == ids[1] and ids[0] != ids[2]


def test_interval_of_the_handout_method_holds_a_known_exponent(impl):
    """(strict) Runs of Chinchilla's law with 0.5% noise on L, 9 sizes per budget around the optimum: the 95% interval
    of the handout's approach 2 exponent (argmin per budget, log-log fit, computed here) holds the true
    β/(α+β) = 0.4516, and is narrower than ±0.15."""
    runs = law_runs(budgets=(1e18, 3e18, 1e19, 3e19, 1e20, 3e20, 1e21), noise=0.005, seed=3)
    estimate, low, high = (np.asarray(v, dtype=np.float64)
                           for v in impl.bootstrap_intervals(runs, approach_2_exponent, samples=400))
    truth = CHINCHILLA[4] / (CHINCHILLA[3] + CHINCHILLA[4])
    assert low[0] <= truth <= high[0], f"the interval [{low[0]:.4f}, {high[0]:.4f}] misses {truth:.4f}"
    assert low[0] <= estimate[0] <= high[0] and high[0] - low[0] < 0.3, (estimate, low, high)


@pytest.mark.parametrize("kwargs", [{"samples": 0}, {"level": 1.0}, {"level": 0.0}], ids=["no-samples", "level-1",
                                                                                          "level-0"])
def test_bootstrap_errors(impl, kwargs):
    """(strict) ValueError for samples < 1 or a level outside (0, 1)."""
    with pytest.raises(ValueError):
        impl.bootstrap_intervals(RUNS, lambda runs: 0.0, **kwargs)
