"""Chinchilla's approach 3 (Hoffmann et al. 2022, §3.3 and appendix D.2): L(N, D) = E + A / N^α + B / D^β fitted with
a Huber loss on ln L from many starting points, and the compute-optimal frontier it implies.

The Huber objective is evaluated at every point of Hoffmann et al.'s grid of initialisations at once (numpy), and
L-BFGS (torch, float64) runs from the best ``STARTS`` of them: running it from all 4,500 would cost minutes per fit,
and the bootstrap refits hundreds of times. The grid points of lowest objective lie in the basins that matter.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

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


def lbfgs(start: np.ndarray, log_n: torch.Tensor, log_d: torch.Tensor, log_loss: torch.Tensor,
          delta: float) -> tuple[float, np.ndarray]:
    """(objective, theta) of L-BFGS from ``start``, theta = (a, b, e, alpha, beta)."""
    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([theta], lr=1, max_iter=2000, tolerance_grad=1e-12, tolerance_change=1e-18,
                                  history_size=20, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        a, b, e, alpha, beta = theta
        predicted = torch.logsumexp(torch.stack([a - alpha * log_n, b - beta * log_d, e.expand_as(log_n)]), dim=0)
        # torch's huber_loss is the same Huber_δ; divided by δ so that the gradient is O(1) for the tolerances.
        value = torch.nn.functional.huber_loss(predicted, log_loss, reduction="sum", delta=delta) / delta
        value.backward()
        return value

    optimizer.step(objective)
    return objective().item() * delta, theta.detach().numpy().copy()


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
    tensors = [torch.from_numpy(v) for v in (log_n, log_d, log_loss)]
    fits = [lbfgs(start, *tensors, delta) for start in starts]
    value, theta = min((fit for fit in fits if np.isfinite(fit[0])), key=lambda fit: fit[0])
    a, b, e, alpha, beta = theta
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
