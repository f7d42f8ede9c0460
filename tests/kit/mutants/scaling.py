"""Scaling's mutants (spec/scaling.py): IsoFLOP minima, power laws, the loss law, its optimum, the bootstrap.

Each is a mistake a course participant could make: the argmin over the wrong axis, D = C / 2N (forward FLOPs only),
runs grouped as they come, a fit in natural instead of log space, a log10 coefficient, the regression the wrong way
round, the Huber loss on L instead of ln L, no Huber at all, the exponents of the optimum swapped, a "bootstrap" that
never resamples, ...
"""

from __future__ import annotations

import itertools
from functools import partial

import numpy as np
import torch

from impl.scaling import isoflops, loss_law
from tests.kit.mutants.common import Mutant

# --------------------------------------------------------------------------------------------- isoflop_minima


def _minima_wrong_axis(runs, method="argmin"):
    """Losses as a (budget, size) matrix, argmin along the budgets: the best budget for each size."""
    n, c, loss = isoflops.run_arrays(runs)
    order = np.lexsort((n, c))  # by budget, then size
    budgets = np.unique(c)
    shape = (len(budgets), -1)  # (budget, size): every profile has the same number of runs
    n_matrix, c_matrix, loss_matrix = (v[order].reshape(shape) for v in (n, c, loss))
    best = loss_matrix.argmin(axis=0)  # (size,)
    columns = np.arange(n_matrix.shape[1])
    n_opt, budget = n_matrix[best, columns], c_matrix[best, columns]
    return budget, n_opt, budget / (6 * n_opt)


def _minima_forward_flops(runs, method="argmin"):
    budgets, n_opt, _ = isoflops.isoflop_minima(runs, method)
    return budgets, n_opt, budgets / (2 * n_opt)


def _minima_grouped_as_they_come(runs, method="argmin"):
    """itertools.groupby without sorting: a profile is a run of consecutive entries of one budget."""
    budgets, n_opt = [], []
    for c, profile in itertools.groupby(runs, key=lambda run: run["compute_budget"]):
        best = min(profile, key=lambda run: run["final_loss"])
        budgets.append(float(c))
        n_opt.append(float(best["parameters"]))
    budgets, n_opt = np.array(budgets), np.array(n_opt)
    return budgets, n_opt, budgets / (6 * n_opt)


def _minima_parabola_in_n(runs, method="argmin"):
    if method != "parabola":
        return isoflops.isoflop_minima(runs, method)
    n, c, loss = isoflops.run_arrays(runs)
    budgets = np.unique(c)
    n_opt = []
    for budget in budgets:
        scaled = n[c == budget] / 1e9  # a parabola in N itself (scaled for conditioning), not in ln N
        p2, p1, _ = np.polyfit(scaled, loss[c == budget], 2)
        n_opt.append(-p1 / (2 * p2) * 1e9)
    n_opt = np.array(n_opt)
    return budgets, n_opt, budgets / (6 * n_opt)


# --------------------------------------------------------------------------------------------- fit_power_law


def power_law_curve_fit(x, y):
    """scipy's curve_fit of y = k x^a on y itself (started from the log-log fit): the largest y weigh most. Also a
    correct variant at the course level (tests/kit/correct_variants.py): the handout allows any fitting method."""
    from scipy.optimize import curve_fit

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    k0, a0 = isoflops.fit_power_law(x, y)
    scale = x.max()  # x / max(x) keeps k's scale sane for the optimizer
    (k, a), _ = curve_fit(lambda t, k, a: k * t ** a, x / scale, y, p0=(k0 * scale ** a0, a0), maxfev=10_000)
    return float(k / scale ** a), float(a)


def _power_law_variant(x, y, *, log10_coefficient=False, x_on_y=False):
    log_x, log_y = np.log(np.asarray(x, dtype=np.float64)), np.log(np.asarray(y, dtype=np.float64))
    slope, intercept = np.polyfit(log_y, log_x, 1) if x_on_y else np.polyfit(log_x, log_y, 1)
    return float(10 ** intercept if log10_coefficient else np.exp(intercept)), float(slope)


# --------------------------------------------------------------------------------------------- fit_loss_law


def _loss_law_variant(parameters, tokens, losses, delta=loss_law.HUBER_DELTA, *, on_loss=False, squared=False,
                      fixed_delta=False):
    """Multi-start L-BFGS (torch's) from the reference's grid points, with the objective changed."""
    delta = loss_law.HUBER_DELTA if fixed_delta else delta
    n, d, loss = (np.asarray(v, dtype=np.float64).ravel() for v in (parameters, tokens, losses))
    log_n, log_d, target = (torch.from_numpy(np.log(v)) for v in (n, d, loss))
    if on_loss:
        target = torch.from_numpy(loss)
    starts = loss_law.GRID[np.argsort(loss_law.grid_objective(np.log(n), np.log(d), np.log(loss), delta))[:8]]
    best = None
    for start in starts:
        theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([theta], max_iter=2000, tolerance_grad=1e-12, tolerance_change=1e-18,
                                      history_size=20, line_search_fn="strong_wolfe")

        def objective():
            optimizer.zero_grad()
            predicted = torch.logsumexp(torch.stack([theta[0] - theta[3] * log_n, theta[1] - theta[4] * log_d,
                                                     theta[2].expand_as(log_n)]), dim=0)
            predicted = predicted.exp() if on_loss else predicted
            value = (((predicted - target) ** 2).sum() if squared else
                     torch.nn.functional.huber_loss(predicted, target, reduction="sum", delta=delta) / delta)
            value.backward()
            return value

        optimizer.step(objective)
        value = objective().item()
        if np.isfinite(value) and (best is None or value < best[0]):
            best = (value, theta.detach().numpy().copy())
    a, b, e, alpha, beta = best[1]
    return float(np.exp(e)), float(np.exp(a)), float(np.exp(b)), float(alpha), float(beta)


# --------------------------------------------------------------------------------------------- loss_law_optimum


def _optimum_variant(law, compute, *, swapped=False, without_six=False):
    _, big_a, big_b, alpha, beta = law
    budget = np.asarray(compute, dtype=np.float64) / (1 if without_six else 6)
    g = (alpha * big_a / (beta * big_b)) ** (1 / (alpha + beta))
    a, b = (alpha, beta) if swapped else (beta, alpha)  # swapped: N's exponent α/(α+β)
    n_opt = g * budget ** (a / (alpha + beta))
    return n_opt, np.asarray(compute, dtype=np.float64) / (6 * n_opt)


# --------------------------------------------------------------------------------------------- bootstrap_intervals


def _bootstrap_variant(runs, statistic, samples=1000, level=0.95, seed=0, *, resample=True, pooled=False,
                       one_sided=False):
    runs = list(runs)
    estimate = np.atleast_1d(np.asarray(statistic(list(runs)), dtype=np.float64))
    rng = np.random.default_rng(seed)
    budgets = np.array([run["compute_budget"] for run in runs])
    profiles = [np.flatnonzero(budgets == c) for c in np.unique(budgets)]
    draws = []
    for _ in range(samples):
        if not resample:
            picked = np.arange(len(runs))
        elif pooled:  # every run from every budget: a profile may lose its minimum, or all its runs
            picked = rng.integers(0, len(runs), len(runs))
        else:
            picked = np.concatenate([rng.choice(p, size=len(p)) for p in profiles])
        draws.append(np.asarray(statistic([runs[i] for i in picked]), dtype=np.float64).reshape(estimate.shape))
    quantiles = [1 - level, level] if one_sided else [(1 - level) / 2, (1 + level) / 2]
    low, high = np.quantile(np.array(draws), quantiles, axis=0)
    return estimate, low, high


MUTANTS = [
    Mutant("minima_wrong_axis", "isoflop_minima", "argmin over the budgets for each size, not over the sizes of "
           "each budget", _minima_wrong_axis),
    Mutant("minima_forward_flops", "isoflop_minima", "D = C / 2N (forward FLOPs only), not C / 6N",
           _minima_forward_flops),
    Mutant("minima_grouped_as_they_come", "isoflop_minima", "profiles as consecutive runs (groupby without sorting)",
           _minima_grouped_as_they_come),
    # strict: the parabola is Hoffmann et al.'s option, beyond the handout
    Mutant("minima_parabola_in_n", "isoflop_minima", "the parabola fitted in N, not ln N", _minima_parabola_in_n,
           level="strict"),
    # strict: the handout accepts any curve fitting method; log-log least squares is the kit's pin
    Mutant("power_law_natural_space", "fit_power_law", "y = k x^a fitted to y (curve_fit), not in log-log space",
           power_law_curve_fit, level="strict"),
    Mutant("power_law_log10_coefficient", "fit_power_law", "k = 10^intercept of a natural-log fit",
           partial(_power_law_variant, log10_coefficient=True)),
    Mutant("power_law_x_on_y", "fit_power_law", "ln x regressed on ln y (polyfit's arguments swapped)",
           partial(_power_law_variant, x_on_y=True)),
    Mutant("loss_law_huber_on_loss", "fit_loss_law", "the Huber loss on L, not ln L",
           partial(_loss_law_variant, on_loss=True), level="strict"),
    Mutant("loss_law_squared_error", "fit_loss_law", "least squares on ln L: no Huber loss",
           partial(_loss_law_variant, squared=True), level="strict"),
    Mutant("loss_law_ignores_delta", "fit_loss_law", "δ fixed at 1e-3 whatever delta says",
           partial(_loss_law_variant, fixed_delta=True), level="strict"),
    Mutant("optimum_exponents_swapped", "loss_law_optimum", "N_opt ∝ C^(α/(α+β)): the exponents of N and D swapped",
           partial(_optimum_variant, swapped=True), level="strict"),
    Mutant("optimum_without_six", "loss_law_optimum", "N_opt from C instead of C / 6",
           partial(_optimum_variant, without_six=True), level="strict"),
    Mutant("bootstrap_without_resampling", "bootstrap_intervals", "every 'resample' is the data itself",
           partial(_bootstrap_variant, resample=False), level="strict"),
    Mutant("bootstrap_pooled", "bootstrap_intervals", "runs resampled across budgets, not within each",
           partial(_bootstrap_variant, pooled=True), level="strict"),
    Mutant("bootstrap_one_sided_quantiles", "bootstrap_intervals", "the 1 − level and level quantiles (a 90% "
           "interval for 95%)", partial(_bootstrap_variant, one_sided=True), level="strict"),
]
