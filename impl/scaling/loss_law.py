"""Chinchilla's approach 3 (Hoffmann et al. 2022, §3.3 and appendix D.2): L(N, D) = E + A / N^α + B / D^β fitted with
a Huber loss on ln L from many starting points, and the compute-optimal frontier it implies.

The Huber objective is evaluated at every point of Hoffmann et al.'s grid of initialisations at once (numpy), and
L-BFGS (scipy's L-BFGS-B, unbounded, float64) runs from the best ``STARTS`` of them: running it from all 4,500 would
cost minutes per fit, and the bootstrap refits hundreds of times. The grid points of lowest objective lie in the basins
that matter. The objective and its gradient are written out in numpy: with 5 parameters and tens of runs, each
evaluation is a few array operations, and an autograd framework's per-operation overhead would be most of the fit.
"""

from __future__ import annotations

import itertools

import numpy as np

from spec.scaling import HUBER_DELTA

# Hoffmann et al.'s grid: a, b (ln A, ln B), e (ln E), alpha, beta.
GRID = np.array(list(itertools.product(np.arange(0, 30, 5), np.arange(0, 30, 5), np.arange(-1, 1.5, 0.5),
                                       np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))), dtype=np.float64)  # (4500, 5)
STARTS = 8  # L-BFGS runs, from the grid points of lowest objective


def huber(residual: np.ndarray, delta: float) -> np.ndarray:
    r = np.abs(residual)
    return np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta))


def grid_objective(log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray, delta: float) -> np.ndarray:
    """The Huber objective at every grid point, (4500,)."""
    a, b, e, alpha, beta = (GRID[:, i:i + 1] for i in range(5))  # each (4500, 1), broadcast against the runs
    predicted = np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e)  # (4500, runs): ln L̂
    return huber(predicted - log_loss, delta).sum(axis=1)


def design_matrix(log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """(3 · runs, 5): the logs of the law's terms are linear in theta = (a, b, e, alpha, beta), so that the rows of
    ``design @ theta`` are ln(A/N^α) = a − α ln N of every run, then ln(B/D^β) = b − β ln D, then ln E = e."""
    design = np.zeros((3, log_n.size, 5))
    design[0, :, 0], design[0, :, 3] = 1, -log_n
    design[1, :, 1], design[1, :, 4] = 1, -log_d
    design[2, :, 2] = 1
    return design.reshape(-1, 5)


def objective(theta: np.ndarray, design: np.ndarray, log_loss: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    """Σ Huber_δ(ln L̂ − ln L) / δ and its gradient in theta; divided by δ so that the gradient is O(1) for
    L-BFGS-B's tolerances."""
    terms = (design @ theta).reshape(3, -1)  # (3, runs): ln of A/N^α, B/D^β, E
    top = terms.max(axis=0)
    weights = np.exp(terms - top)  # the terms with the largest factored out, so that none overflows
    total = weights.sum(axis=0)
    residual = top + np.log(total) - log_loss  # ln L̂ − ln L
    slope = np.clip(residual, -delta, delta)  # Huber_δ'(r)
    value = slope @ (residual - slope / 2)  # Huber_δ(r) = Huber_δ'(r) (r − Huber_δ'(r) / 2), on both sides of ±δ
    # Chain rule: ∂ ln L̂ / ∂ (a term's log) is that term's share of L̂ (weights / total), and the gradient of a
    # term's log in theta is its row of the design matrix.
    return value / delta, (weights * (slope / (total * delta))).ravel() @ design


def fit_loss_law(parameters, tokens, losses, delta=HUBER_DELTA):
    n, d, loss = (np.asarray(v, dtype=np.float64).ravel() for v in (parameters, tokens, losses))
    if not n.shape == d.shape == loss.shape:
        raise ValueError(f"parameters, tokens and losses differ in length: {n.size}, {d.size}, {loss.size}")
    if n.size < 5:
        raise ValueError(f"a loss law has 5 parameters: it needs at least 5 runs, got {n.size}")
    if not all(np.all(np.isfinite(v) & (v > 0)) for v in (n, d, loss)):
        raise ValueError("parameters, tokens and losses must be positive and finite")
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    log_n, log_d, log_loss = np.log(n), np.log(d), np.log(loss)
    starts = GRID[np.argsort(grid_objective(log_n, log_d, log_loss, delta), kind="stable")[:STARTS]]
    from scipy.optimize import minimize  # here: importing scipy.optimize costs every kit process ~0.6 s

    design = design_matrix(log_n, log_d)
    # ftol=0: on until a step no longer lowers the objective (the fit's precision is float64's, not a tolerance's).
    fits = [minimize(objective, start, args=(design, log_loss, delta), jac=True, method="L-BFGS-B",
                     options={"maxiter": 2000, "maxcor": 20, "ftol": 0, "gtol": 1e-12}) for start in starts]
    a, b, e, alpha, beta = min((fit for fit in fits if np.isfinite(fit.fun)), key=lambda fit: fit.fun).x
    return float(np.exp(e)), float(np.exp(a)), float(np.exp(b)), float(alpha), float(beta)


def loss_law_optimum(law, compute):
    _, big_a, big_b, alpha, beta = law
    compute = np.asarray(compute, dtype=np.float64)
    if not (compute > 0).all():
        raise ValueError("compute budgets must be positive")
    if not min(big_a, big_b, alpha, beta) > 0:
        raise ValueError(f"the law's A, B, alpha and beta must be positive, got {big_a}, {big_b}, {alpha}, {beta}")
    # Minimizing A N^-α + B (C / 6N)^-β over N: α A N^-α = β B D^-β at the optimum (Hoffmann et al. eq. 4).
    g = (alpha * big_a / (beta * big_b)) ** (1 / (alpha + beta))
    n_opt = g * (compute / 6) ** (beta / (alpha + beta))
    d_opt = (compute / 6) ** (alpha / (alpha + beta)) / g
    return np.asarray(n_opt), np.asarray(d_opt)  # 0-dim arrays, not numpy scalars, for a float budget
