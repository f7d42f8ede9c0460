"""Percentile-bootstrap intervals over training runs, resampled within each IsoFLOP profile (Efron & Tibshirani).

Resampling inside each compute budget keeps every profile whole (a budget never loses all its runs, so its minimum
stays defined) while the runs that make up a profile vary: what the interval measures is how much the fit depends on
which runs happened to be trained.
"""

from __future__ import annotations

import numpy as np

from impl.scaling.isoflops import run_arrays


def bootstrap_intervals(runs, statistic, samples=1000, level=0.95, seed=0):
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    runs = list(runs)
    _, budgets, _ = run_arrays(runs)
    profiles = [np.flatnonzero(budgets == budget) for budget in np.unique(budgets)]  # run indices of each budget
    estimate = np.atleast_1d(np.asarray(statistic(list(runs)), dtype=np.float64))
    rng = np.random.default_rng(seed)
    draws = np.empty((samples, *estimate.shape))
    for s in range(samples):
        picked = np.concatenate([rng.choice(profile, size=len(profile), replace=True) for profile in profiles])
        draws[s] = np.asarray(statistic([runs[i] for i in picked]), dtype=np.float64).reshape(estimate.shape)
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return estimate, low, high
