"""The plots of ``fit-scaling-laws``, each readable on its own: the handout's deliverables (N_opt and D_opt against C,
the ⟨C_i, N_opt(C_i)⟩ points and the power law extrapolated to at least 1e24 FLOPs, here with its bootstrap band and
the predictions at the target budgets), and the IsoFLOP profiles the points come from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

QUANTITY = {"n_opt": ("N_opt", "model size", "parameters", "a"), "d_opt": ("D_opt", "dataset size", "tokens", "b")}


def grid_budgets(low: float, high: float, count: int) -> list[float]:
    """``count`` budgets evenly spaced in log from ``low`` to ``high``."""
    return np.geomspace(low, high, count).tolist()


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> None:
    from impl.programs.files import atomic_write

    with atomic_write(path) as file:
        fig.savefig(file, format="png", dpi=120)


def plot_optimum(path: Path, quantity: str, budgets, optima, grid, law, frontier, results: dict) -> None:
    """N_opt (or D_opt) against C: the profiles' optima, the approach-2 power law with its band, approach 3's frontier,
    and the predictions at the targets with their intervals written beside them."""
    symbol, what, unit, exponent = QUANTITY[quantity]
    level, two = results["level"], results["approach_2"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.fill_between(grid, law[1], law[2], color="tab:blue", alpha=0.2,
                    label=f"approach 2, {level:.0%} bootstrap interval ({two['samples']} resamples)")
    ax.plot(grid, law[0], color="tab:blue", label=f"approach 2: {symbol} ∝ C^{exponent}, {exponent} = "
                                                   f"{two[exponent]['estimate']:.3f} (fit in log-log space)")
    if frontier is not None:
        ax.fill_between(grid, frontier[1], frontier[2], color="tab:orange", alpha=0.15)
        ax.plot(grid, frontier[0], "--", color="tab:orange",
                label="approach 3: optimum of L(N, D) = E + A/N^α + B/D^β (Huber on ln L)")
    ax.scatter(budgets, optima, color="black", zorder=3,
               label=f"⟨C_i, {symbol}(C_i)⟩: {results['method']} of each IsoFLOP profile")
    for row in two["targets"]:
        c, value = row["compute"], row[quantity]
        estimate, low, high = value["estimate"], value["low"], value["high"]
        ax.errorbar([c], [estimate], yerr=[[estimate - low], [high - estimate]], fmt="o", color="tab:red", capsize=5,
                    zorder=4)
        ax.annotate(f"C = {c:.0e}: {symbol} = {estimate:.3g}\n[{low:.3g}, {high:.3g}] {unit}",
                    (c, estimate), textcoords="offset points", xytext=(-10, 12), ha="right", fontsize=8,
                    color="tab:red")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute budget C (FLOPs)")
    ax.set_ylabel(f"compute-optimal {what} {symbol} ({unit})")
    ax.set_title(f"Compute-optimal {what} vs compute: {len(budgets)} IsoFLOP budgets, extrapolated to "
                 f"{grid[-1]:.0e} FLOPs", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)


def plot_isoflops(path: Path, runs: list[dict], minima, law, method: str) -> None:
    """Final loss against N for each budget, each profile's optimum starred, approach 3's law over them."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    budgets = minima[0]
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(budgets)))
    for c, n_opt, colour in zip(budgets, minima[1], colours):
        profile = sorted((r["parameters"], r["final_loss"]) for r in runs if r["compute_budget"] == c)
        n, loss = np.array(profile).T
        ax.plot(n, loss, "o-", color=colour, markersize=4, linewidth=1, label=f"C = {c:.0e} FLOPs")
        if law is not None:
            e, a, b, alpha, beta = law
            dense = np.geomspace(n.min(), n.max(), 100)
            ax.plot(dense, e + a / dense ** alpha + b / (c / (6 * dense)) ** beta, ":", color=colour, linewidth=1)
        # The parabola's vertex lies between runs: its star sits on the profile's line, interpolated in ln N.
        ax.plot([n_opt], [np.interp(np.log(n_opt), np.log(n), loss)], "*", color=colour, markersize=13,
                markeredgecolor="black", zorder=3)
    title = f"IsoFLOP profiles: final loss vs model size at each budget (stars: the {method} optimum)"
    if law is not None:
        title += "\ndotted: approach 3's L(N, D = C/6N)"
    ax.set_xscale("log")
    ax.set_xlabel("model size N (parameters)")
    ax.set_ylabel("final loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
