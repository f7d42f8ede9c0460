"""What the scaling tests share: the handout's IsoFLOP runs, runs drawn from a known law, and the plain oracles.

The oracles are written from the handout and Hoffmann et al. in plain Python and numpy, beside scipy's
``curve_fit`` / ``least_squares`` (built inside ``oracle(...)``, so that a broken scipy is the kit's error).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np

from fixtures import FIXTURES_DIR

HANDOUT_RUNS_PATH = FIXTURES_DIR / "data" / "scaling" / "isoflops_curves.json"
# Hoffmann et al.'s fitted law (E, A, B, alpha, beta): N_opt ∝ C^0.45, D_opt ∝ C^0.55.
CHINCHILLA = (1.69, 406.4, 410.7, 0.34, 0.28)
DELTA = 1e-3  # Hoffmann et al.'s Huber threshold


def handout_runs() -> list[dict]:
    return json.loads(HANDOUT_RUNS_PATH.read_text())


def law_loss(law, n, d):
    e, a, b, alpha, beta = law
    return e + a / np.asarray(n, dtype=np.float64) ** alpha + b / np.asarray(d, dtype=np.float64) ** beta


def optimum_oracle(law, compute: float) -> float:
    """N_opt of ``law`` at ``compute`` from the closed form written out (Hoffmann et al. eq. 4)."""
    _, a, b, alpha, beta = law
    g = (alpha * a / (beta * b)) ** (1 / (alpha + beta))
    return g * (compute / 6) ** (beta / (alpha + beta))


def law_runs(law=CHINCHILLA, budgets=(1e18, 1e19, 1e20, 1e21, 1e22), steps=range(-4, 5), noise=0.0, seed=0):
    """IsoFLOP runs of ``law``: at each budget, N = N_opt(C) · 2^(k/2) for k in ``steps`` (so that the optimum is one
    of the runs), D = C / 6N, L = L(N, D) · exp(noise · ε), ε standard normal."""
    rng = np.random.default_rng(seed)
    runs = []
    for c in budgets:
        for k in steps:
            n = optimum_oracle(law, c) * 2 ** (k / 2)
            loss = float(law_loss(law, n, c / (6 * n)) * math.exp(noise * rng.standard_normal()))
            runs.append({"parameters": n, "compute_budget": c, "final_loss": loss})
    return runs


def columns(runs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, D = C / 6N, L) of the runs."""
    n = np.array([r["parameters"] for r in runs], dtype=np.float64)
    c = np.array([r["compute_budget"] for r in runs], dtype=np.float64)
    return n, c / (6 * n), np.array([r["final_loss"] for r in runs], dtype=np.float64)


def argmin_oracle(runs) -> dict[float, float]:
    """{C: N of the lowest loss among the runs of budget C (ties: the smallest N)}, the handout's method."""
    profiles = defaultdict(list)
    for run in runs:
        profiles[float(run["compute_budget"])].append((float(run["final_loss"]), float(run["parameters"])))
    return {c: min(profile)[1] for c, profile in sorted(profiles.items())}


def log_log_oracle(x, y) -> tuple[float, float]:
    """(k, a) of ln y = ln k + a ln x by least squares, in closed form: a = Σ(u − ū)(v − v̄) / Σ(u − ū)²."""
    u, v = [math.log(t) for t in x], [math.log(t) for t in y]
    u_mean, v_mean = sum(u) / len(u), sum(v) / len(v)
    a = sum((ui - u_mean) * (vi - v_mean) for ui, vi in zip(u, v)) / sum((ui - u_mean) ** 2 for ui in u)
    return math.exp(v_mean - a * u_mean), a


def approach_2_exponent(runs) -> float:
    """The exponent a of N_opt ∝ C^a by the oracles: the handout's minima, then the closed-form log-log fit."""
    minima = argmin_oracle(runs)
    return log_log_oracle(list(minima), list(minima.values()))[1]


def huber_objective(law, n, d, loss, delta=DELTA) -> float:
    """Σ Huber_δ(ln L̂ − ln L), Hoffmann et al.'s objective, in float64."""
    r = np.abs(np.log(law_loss(law, n, d)) - np.log(loss))
    return float(np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta)).sum())
