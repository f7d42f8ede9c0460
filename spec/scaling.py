"""Scaling laws: IsoFLOP profiles (handout A3 §2.1, Chinchilla's approach 2), the parametric loss law (Hoffmann et
al. 2022, approach 3) and bootstrap confidence intervals. The docstrings are normative.

A *run* is one training run in the handout's format (``data/isoflops_curves.json``): a mapping with the keys
``"parameters"`` (N), ``"compute_budget"`` (C, FLOPs) and ``"final_loss"`` (L); runs of one compute budget form its
IsoFLOP profile. Training tokens are D = C / (6N) throughout (A3 §2.1: C ≈ 6ND). Logarithms are natural; arrays are
float64 numpy arrays.

Levels: what the handout's problem ``chinchilla_isoflops`` needs (the run of lowest loss per budget, power laws that
hold exactly where the points lie on one) is the course level; the kit's pins beyond it (the least-squares fit in
log-log space, the parabola, approach 3, the bootstrap, the errors) are (strict): the handout accepts "any curve fitting
method you'd like".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

# This area's components, in the report's order (spec.COMPONENTS is built from them).
__all__ = ["isoflop_minima", "fit_power_law", "fit_loss_law", "loss_law_optimum", "bootstrap_intervals"]

Run = Mapping[str, float]
# L(N, D) = E + A / N**alpha + B / D**beta, as the tuple (E, A, B, alpha, beta).
LossLaw = tuple[float, float, float, float, float]

# Hoffmann et al.'s Huber threshold on log L (approach 3).
HUBER_DELTA = 1e-3


def isoflop_minima(runs: Sequence[Run], method: Literal["argmin", "parabola"] = "argmin",
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The compute-optimal model of each IsoFLOP profile: ``(C_i, N_opt(C_i), D_opt(C_i))`` (A3 §2.1).

    - One entry per distinct ``compute_budget``, in increasing order of C; three float64 arrays of that length.
      The result depends only on the set of runs, never on their order in ``runs``.
    - ``method="argmin"`` (the handout's recommendation): N_opt(C_i) is the ``parameters`` of the run of lowest
      ``final_loss`` among the runs of budget C_i. (strict) Of runs with equal lowest loss, the smallest N.
    - (strict) ``method="parabola"`` (Hoffmann et al.): L = p₀ + p₁ ln N + p₂ (ln N)² fitted to the profile's runs by
      ordinary least squares; N_opt = exp(−p₁ / (2 p₂)), the vertex. It needs at least 3 runs with distinct N per
      budget and p₂ > 0 (a minimum), else ValueError naming the budget.
    - D_opt(C_i) = C_i / (6 · N_opt(C_i)).
    - (strict) ValueError for no runs, a run without one of the three keys, or a non-positive or non-finite value;
      and for an unknown ``method``.
    """
    ...


def fit_power_law(x: ArrayLike, y: ArrayLike) -> tuple[float, float]:
    """The power law y = k · x^a through the points (x_j, y_j): returns ``(k, a)`` as Python floats (A3 §2.1: N_opt ∝
    C^a, D_opt ∝ C^b, then k · C^a extrapolates to a larger budget).

    - Points that lie on a power law give it back (to float64 rounding), whatever the fitting method.
    - (strict) Fitted in log-log space: ln k and a are the ordinary least-squares intercept and slope of ln y on
      ln x, every point weighted alike (not a least-squares fit of y itself, which weights the largest y most).
    - (strict) ValueError for fewer than two distinct x, arrays of different lengths, or a non-positive x or y.
    """
    ...


def fit_loss_law(parameters: ArrayLike, tokens: ArrayLike, losses: ArrayLike, delta: float = HUBER_DELTA) -> LossLaw:
    """(strict) Chinchilla's approach 3: the law L(N, D) = E + A / N^α + B / D^β fitted to runs (N_j, D_j, L_j);
    returns ``(E, A, B, alpha, beta)`` as Python floats, E, A, B > 0.

    - The fit minimizes Σ_j Huber_δ(ln L̂(N_j, D_j) − ln L_j): the Huber loss on the *log* of the loss, Huber_δ(r) =
      r²/2 for |r| ≤ δ, δ(|r| − δ/2) beyond, with δ = ``delta`` (Hoffmann et al.: 10⁻³), so that runs far off the law
      weigh little. Parametrized as ln L̂ = LSE(a − α ln N, b − β ln D, e), A = eᵃ, B = eᵇ, E = eᵉ.
    - The objective has local minima: the optimizer starts from many points (Hoffmann et al.: L-BFGS from a grid
      over α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1}, a, b ∈ {0, 5, …, 25}) and keeps the best. What is checked is
      the objective it reaches (no higher than a careful multi-start optimizer's, to 10⁻⁶ relative) and, where the
      points lie on a law, that law.
    - ValueError for arrays of different lengths, fewer than 5 runs, a non-positive value, or δ ≤ 0.
    """
    ...


def loss_law_optimum(law: LossLaw, compute: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(strict) The compute-optimal ``(N_opt, D_opt)`` of a loss law (Hoffmann et al. eq. 4): the (N, D) of lowest
    L(N, D) = E + A / N^α + B / D^β with 6ND = C, for each budget in ``compute`` (a float or an array).

    - Closed form: N_opt = G (C/6)^(β/(α+β)), D_opt = G⁻¹ (C/6)^(α/(α+β)), G = (αA / (βB))^(1/(α+β)); so
      6 · N_opt · D_opt = C.
    - Returns two float64 arrays of ``compute``'s shape (0-dim for a float).
    - ValueError for a non-positive budget, A, B, α or β.
    """
    ...


def bootstrap_intervals(runs: Sequence[Run], statistic: Callable[[list[Run]], ArrayLike], samples: int = 1000,
                        level: float = 0.95, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(strict) Percentile-bootstrap confidence intervals of ``statistic`` (exponents, predicted N_opt, ...):
    returns ``(estimate, low, high)``, three float64 arrays of the statistic's shape (a float statistic: shape (1,)).

    - ``estimate = statistic(list(runs))``: called first, on the runs as given.
    - Then ``samples`` times: a resample of the runs *within each compute budget* (each budget keeps its count of
      runs, drawn uniformly with replacement from that budget's runs, so that every IsoFLOP profile stays one),
      handed to ``statistic`` as a list of the original run mappings (duplicates included). The resamples are
      independent and reproducible from ``seed``.
    - ``low`` and ``high`` are the (1 − level)/2 and (1 + level)/2 quantiles of the ``samples`` resampled
      statistics, element by element, interpolated linearly between order statistics (``numpy.quantile``'s default).
    - ValueError for ``samples`` < 1, ``level`` outside (0, 1), or no runs.
    """
    ...
