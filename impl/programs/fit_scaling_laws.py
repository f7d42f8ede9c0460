"""The ``fit-scaling-laws`` program: the handout's answers from IsoFLOP runs (A3 §2.1, problem chinchilla_isoflops),
with bootstrap intervals, by Chinchilla's approaches 2 and 3, and the plots.

    fit-scaling-laws                                   # the handout's 72 runs -> runs/scaling/
    fit-scaling-laws --runs my_runs.json --method parabola --targets 1e22 1e23 1e24 --out runs/mine

Approach 2 takes each budget's compute-optimal size (the run of lowest loss, the handout's method, or the vertex of a
parabola in ln N) and fits N_opt = k C^a and D_opt = k' C^b in log-log space. Approach 3 fits L(N, D) = E + A/N^α +
B/D^β (Huber on ln L) and reads N_opt, D_opt and the loss off it. Every number comes with a percentile-bootstrap
interval over the runs resampled within each budget. Writes results.json, n_opt.png, d_opt.png and isoflops.png.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from impl.programs.cli import ArgumentParser, UserError, positive_int, run

DEFAULT_RUNS = Path(__file__).resolve().parents[2] / "fixtures" / "data" / "scaling" / "isoflops_curves.json"
OUTPUTS = ("results.json", "n_opt.png", "d_opt.png", "isoflops.png")
BAND_POINTS = 40  # budgets on the plots' extrapolation grid, each with its bootstrap interval


def positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def build_parser() -> ArgumentParser:
    parser = ArgumentParser("fit-scaling-laws", "Compute-optimal model and data sizes from IsoFLOP runs (A3 §2.1), "
                                                "with bootstrap intervals and plots.")
    parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS,
                        help="JSON array of runs {parameters, compute_budget, final_loss} (default: the handout's)")
    parser.add_argument("--out", type=Path, default=Path("runs/scaling"), help="directory for the results and plots")
    parser.add_argument("--targets", type=positive_float, nargs="+", default=[1e23, 1e24],
                        help="compute budgets (FLOPs) to predict N_opt and D_opt at")
    parser.add_argument("--method", choices=("argmin", "parabola"), default="argmin",
                        help="each budget's optimum: the run of lowest loss (the handout's) or a parabola's vertex")
    parser.add_argument("--samples", type=positive_int, default=1000, help="bootstrap resamples of approach 2")
    parser.add_argument("--loss-law-samples", type=non_negative_int, default=100,
                        help="bootstrap resamples of approach 3 (~0.2 s each); 0 skips approach 3")
    parser.add_argument("--level", type=probability, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    parser.add_argument("--plot-up-to", type=positive_float, default=1e24,
                        help="the plots' extrapolation reaches past this budget and past the largest target")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv, fit_scaling_laws)


def read_runs(path: Path) -> list[dict]:
    """The runs of ``path``, every one checked before any fit (a UserError names the first bad one)."""
    from impl.programs.tokenizer import check_input
    from impl.scaling.isoflops import run_arrays

    check_input(path, "--runs")
    try:
        runs = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"--runs {path} is not JSON: {error}") from None
    if not isinstance(runs, list) or not all(isinstance(run, dict) for run in runs):
        raise UserError(f"--runs {path} must hold a JSON array of objects (runs), as the handout's file does")
    try:
        _, budgets, _ = run_arrays(runs)
    except (ValueError, TypeError) as error:
        raise UserError(f"--runs {path}: {error}") from None
    if len(set(budgets.tolist())) < 2:
        raise UserError(f"--runs {path}: a power law in C needs at least two compute budgets, got one")
    return runs


def approach_2(runs: list[dict], method: str, budgets: list[float], dropped: list[int]) -> list[float]:
    """[a, b, N_opt at each budget..., D_opt at each budget...] of the power laws through the profiles' optima.

    A resampled profile can lose its parabola (fewer than 3 distinct sizes drawn, or a maximum): that profile is left
    out of this resample's fit and its budget appended to ``dropped``; the data's own profiles were checked before.
    """
    import numpy as np

    from impl.scaling import fit_power_law, isoflop_minima

    optima = []
    for c in sorted({r["compute_budget"] for r in runs}):
        try:
            optima.append([v[0] for v in isoflop_minima([r for r in runs if r["compute_budget"] == c], method)])
        except ValueError:
            dropped.append(c)
    c, n_opt, d_opt = np.array(optima).T  # (3, profiles)
    (k_n, a), (k_d, b) = fit_power_law(c, n_opt), fit_power_law(c, d_opt)
    return [a, b, *(k_n * t ** a for t in budgets), *(k_d * t ** b for t in budgets)]


def approach_3(runs: list[dict], budgets: list[float]) -> list[float]:
    """[E, A, B, α, β, N_opt..., D_opt..., L(N_opt, D_opt)...] of the loss law fitted to the runs.

    A law with α or β <= 0 (the loss not falling with N, or with D) has no compute-optimal size: its N_opt, D_opt and
    loss are NaN (a resample's are left out of the intervals and counted; the data's own are a UserError)."""
    import numpy as np

    from impl.scaling import fit_loss_law, loss_law_optimum

    n = np.array([r["parameters"] for r in runs], dtype=np.float64)
    c = np.array([r["compute_budget"] for r in runs], dtype=np.float64)
    law = fit_loss_law(n, c / (6 * n), np.array([r["final_loss"] for r in runs], dtype=np.float64))
    e, a, b, alpha, beta = law
    if min(alpha, beta) <= 0:
        return [*law, *[math.nan] * (3 * len(budgets))]
    n_opt, d_opt = loss_law_optimum(law, np.array(budgets))
    return [*law, *n_opt, *d_opt, *(e + a / n_opt ** alpha + b / d_opt ** beta)]


def bootstrapped(runs, statistic, samples: int, args, what: str):
    """(estimate, low, high, undefined) of ``statistic`` with a progress bar over its resamples; ``undefined``
    counts the resamples with a NaN in the statistic, whose NaN elements are left out of those elements' intervals
    (the percentiles of the others)."""
    import numpy as np
    from tqdm import tqdm

    from impl.scaling import bootstrap_intervals

    draws = []
    with tqdm(total=samples + 1, desc=what, unit="fit", dynamic_ncols=True, leave=False) as bar:
        def counted(resample):
            value = statistic(resample)
            draws.append(value)
            bar.update()
            return value

        estimate, low, high = bootstrap_intervals(runs, counted, samples=samples, level=args.level, seed=args.seed)
    resampled = np.asarray(draws[1:], dtype=np.float64)  # draws[0]: the estimate, on the runs as given
    undefined = int(np.isnan(resampled).any(axis=1).sum())
    if undefined and undefined < samples:
        low, high = np.nanquantile(resampled, [(1 - args.level) / 2, (1 + args.level) / 2], axis=0)
    return estimate, low, high, undefined


def rows(result, where: slice) -> list[dict]:
    """{estimate, low, high} of each element ``where`` of a bootstrap result."""
    estimate, low, high = (v[where] for v in result[:3])
    return [{"estimate": float(e), "low": float(lo), "high": float(hi)} for e, lo, hi in zip(estimate, low, high)]


def fit_scaling_laws(args: argparse.Namespace) -> int:
    from impl.programs.files import atomic_write_text, remove_stale_temps
    from impl.programs.scaling_plots import grid_budgets, plot_isoflops, plot_optimum
    from impl.programs.tokenizer import check_output
    from impl.scaling import isoflop_minima

    check_output(args.out, directory=True)
    runs = read_runs(args.runs)
    start = time.perf_counter()
    targets = sorted(args.targets)
    try:  # a profile without a parabola's minimum, say: the data's fault, named before any resampling
        minima = isoflop_minima(runs, args.method)
    except ValueError as error:
        raise UserError(f"--runs {args.runs}: {error}") from None
    # The plots reach past the largest target, and past --plot-up-to (the handout's 1e24), so that no prediction
    # sits on their edge.
    grid = grid_budgets(minima[0][0], 3 * max(targets[-1], args.plot_up_to), BAND_POINTS)
    budgets, t, m = [*targets, *grid], len(targets), len(targets) + len(grid)
    # Where each quantity sits in the statistics' vectors (approach_2, approach_3): the targets, then the grid.
    n2, d2 = slice(2, 2 + m), slice(2 + m, 2 + 2 * m)
    n3, d3, l3 = slice(5, 5 + m), slice(5 + m, 5 + 2 * m), slice(5 + 2 * m, 5 + 3 * m)
    if args.loss_law_samples:  # the runs' own law first: without an optimum, no resample is worth its time
        law = approach_3(runs, targets)
        if math.isnan(law[5]):
            raise UserError(f"--runs {args.runs}: approach 3: the runs' loss law has α or β <= 0 (α = {law[3]:.3g}, "
                            f"β = {law[4]:.3g}): the loss does not fall with N or D, so no compute-optimal size "
                            f"follows (--loss-law-samples 0 skips approach 3)")
    dropped: list[float] = []
    two = bootstrapped(runs, lambda rs: approach_2(rs, args.method, budgets, dropped), args.samples, args,
                       "approach 2")
    three = (bootstrapped(runs, lambda rs: approach_3(rs, budgets), args.loss_law_samples, args, "approach 3")
             if args.loss_law_samples else None)
    if three is not None and three[3] == args.loss_law_samples:
        raise UserError(f"--runs {args.runs}: approach 3: every resample's loss law has α or β <= 0: no interval "
                        f"of the compute-optimal size (--loss-law-samples 0 skips approach 3)")

    results = {"runs": str(args.runs), "method": args.method, "level": args.level, "seed": args.seed,
               "approach_2": {"samples": args.samples, "profiles_dropped": len(dropped),
                              "a": rows(two, slice(0, 1))[0], "b": rows(two, slice(1, 2))[0],
                              "targets": [{"compute": c, "n_opt": n, "d_opt": d} for c, n, d in
                                          zip(targets, rows(two, n2)[:t], rows(two, d2)[:t])]}}
    if three is not None:
        results["approach_3"] = {"samples": args.loss_law_samples, "resamples_without_optimum": three[3],
                                 **dict(zip(("E", "A", "B", "alpha", "beta"), rows(three, slice(0, 5)))),
                                 "targets": [{"compute": c, "n_opt": n, "d_opt": d, "loss": loss} for c, n, d, loss in
                                             zip(targets, rows(three, n3)[:t], rows(three, d3)[:t],
                                                 rows(three, l3)[:t])]}
    args.out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        remove_stale_temps(args.out / name)
    atomic_write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")
    for quantity, optima, where2, where3 in (("n_opt", minima[1], n2, n3), ("d_opt", minima[2], d2, d3)):
        on_grid = slice(where2.start + t, where2.stop)
        frontier = None if three is None else [v[where3.start + t:where3.stop] for v in three[:3]]
        plot_optimum(args.out / f"{quantity}.png", quantity, minima[0], optima, grid, [v[on_grid] for v in two[:3]],
                     frontier, results)
    plot_isoflops(args.out / "isoflops.png", runs, minima, None if three is None else three[0][:5], args.method)
    print(summary(results, len(runs), len(minima[0]), time.perf_counter() - start, args.out))
    return 0


def interval(value: dict) -> str:
    return f"{value['estimate']:.3g} [{value['low']:.3g}, {value['high']:.3g}]"


def summary(results: dict, runs: int, budgets: int, seconds: float, out: Path) -> str:
    """What the program prints: the handout's answers with their intervals, then approach 3's."""
    level = f"{results['level']:.0%}"
    two = results["approach_2"]
    lines = [f"fit-scaling-laws: {runs} runs at {budgets} compute budgets from {results['runs']}",
             f"approach 2 ({results['method']} per budget, power laws in log-log space; {level} intervals, "
             f"{two['samples']} bootstrap resamples within budgets):",
             f"  N_opt ∝ C^a, a = {interval(two['a'])};  D_opt ∝ C^b, b = {interval(two['b'])}"]
    lines += [f"  C = {row['compute']:.0e} FLOPs: N_opt = {interval(row['n_opt'])} parameters, "
              f"D_opt = {interval(row['d_opt'])} tokens" for row in two["targets"]]
    if two["profiles_dropped"]:
        lines.append(f"  ({two['profiles_dropped']} resampled profiles without a parabola's minimum were left out of "
                     f"their resample's fit)")
    if "approach_3" in results:
        three = results["approach_3"]
        lines += [f"approach 3 (L = E + A/N^α + B/D^β, Huber on ln L; {three['samples']} resamples): "
                  + ", ".join(f"{name} = {interval(three[name])}" for name in ("E", "A", "B", "alpha", "beta"))]
        lines += [f"  C = {row['compute']:.0e} FLOPs: N_opt = {interval(row['n_opt'])}, D_opt = "
                  f"{interval(row['d_opt'])}, loss = {interval(row['loss'])}" for row in three["targets"]]
        if three["resamples_without_optimum"]:
            lines.append(f"  ({three['resamples_without_optimum']} resampled laws with α or β <= 0, no compute-optimal "
                         f"size, were left out of the intervals of N_opt, D_opt and the loss)")
        if all(row["n_opt"]["high"] - row["n_opt"]["low"] <= 1e-6 * row["n_opt"]["estimate"]
               for row in three["targets"]):
            lines.append("  (intervals of width 0: every resample lies on the same law, as noise-free runs do)")
    lines.append(f"wrote {out}/{{{','.join(OUTPUTS)}}} in {seconds:.1f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
