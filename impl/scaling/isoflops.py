"""Chinchilla's approach 2 (A3 §2.1): the compute-optimal N of each IsoFLOP profile, then power laws in C.

The handout takes the run of lowest loss per budget; Hoffmann et al. fit a parabola in ln N to each profile and take
its vertex, which can fall between the sampled sizes. Both give ⟨C_i, N_opt(C_i)⟩, and D_opt = C / (6 N_opt).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

KEYS = ("parameters", "compute_budget", "final_loss")


def run_arrays(runs: Sequence[Mapping[str, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, C, L) of the runs as float64 arrays, after checking each run has the three keys and positive values."""
    if len(runs) == 0:
        raise ValueError("runs is empty: give at least one run")
    columns = []
    for key in KEYS:
        try:
            column = np.array([run[key] for run in runs], dtype=np.float64)
        except KeyError:
            index = next(i for i, run in enumerate(runs) if key not in run)
            raise ValueError(f"run {index} has no {key!r} (a run holds {', '.join(KEYS)})") from None
        bad = ~(np.isfinite(column) & (column > 0))
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise ValueError(f"run {index} has {key}={float(column[index])!r}: it must be positive and finite")
        columns.append(column)
    return columns[0], columns[1], columns[2]


def isoflop_minima(runs, method="argmin"):
    if method not in ("argmin", "parabola"):
        raise ValueError(f"method must be 'argmin' or 'parabola', got {method!r}")
    n, c, loss = run_arrays(runs)
    budgets, group = np.unique(c, return_inverse=True)  # budgets ascending; group[j]: the budget index of run j
    n_opt = np.empty(len(budgets))
    for i, budget in enumerate(budgets):
        n_i, loss_i = n[group == i], loss[group == i]
        n_opt[i] = parabola_vertex(n_i, loss_i, budget) if method == "parabola" else n_i[loss_i == loss_i.min()].min()
    return budgets, n_opt, budgets / (6 * n_opt)


def parabola_vertex(n: np.ndarray, loss: np.ndarray, budget: float) -> float:
    """exp of the vertex of the least-squares parabola L = p0 + p1 u + p2 u², u = ln N (Hoffmann et al.)."""
    if len(np.unique(n)) < 3:
        raise ValueError(f"the profile of compute_budget={budget:g} has fewer than 3 distinct sizes: a parabola "
                         f"needs 3")
    center = np.log(n).mean()  # centred for a well-conditioned fit: ln N spans ~20-25 with a range of a few units
    u = np.log(n) - center
    (p0, p1, p2), *_ = np.linalg.lstsq(np.stack([np.ones_like(u), u, u * u], axis=1), loss, rcond=None)
    if not p2 > 0:
        raise ValueError(f"the parabola fitted to the profile of compute_budget={budget:g} opens downwards (a maximum, "
                         f"not a minimum)")
    return float(np.exp(center - p1 / (2 * p2)))


def fit_power_law(x, y):
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.size} and {y.size}")
    if not ((x > 0).all() and (y > 0).all()):
        raise ValueError("x and y must be positive: a power law is fitted to their logarithms")
    if len(np.unique(x)) < 2:
        raise ValueError("x needs at least two distinct values to fit a power law")
    # ln y = ln k + a ln x by ordinary least squares: each point weighs alike in log space.
    design = np.stack([np.ones_like(x), np.log(x)], axis=1)  # (points, 2)
    (log_k, a), *_ = np.linalg.lstsq(design, np.log(y), rcond=None)
    return float(np.exp(log_k)), float(a)
