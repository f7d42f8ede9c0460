"""An IsoFLOP study through the local training API (A3 §2–3): a sweep of small runs per compute budget, the fits
with their intervals, then the run the fit predicts for a larger budget, predicted vs actual loss.

    python -m bench.scaling.isoflop_study --data-dir runs/linux-data --budgets 1e13 3e13 1e14 --predict 1e15 \\
        --devices cuda:0 --out runs/isoflop-study --max-minutes 9     # again to continue: it resumes

The experiments are the training API's (``training-api``, started here on a free loopback port over ``--data-dir``,
stopped at the end; its state in ``<out>/api`` survives a stop, so that a rerun of the same command continues
where the last one stopped: submitted experiments are found again, not run twice). Every run reads the data in the
handout's fixed order, no token twice, so each budget's tokens must exist in the training split.

Model sizes (``--count``): ``matmul`` (default), N = 12 · n_layer · d_model² + vocab · d_model, the parameters
that take part in matrix products, so that C = 6 N D is the training compute but for attention's scores: at these
small widths the LM head is most of it; ``handout``, N = 12 · n_layer · d_model², the handout's non-embedding count
(A3 §3, meant for large models). (The SwiGLU has d_ff ≈ 8/3 d_model, so that the MLP's 3 · d · d_ff ≈ 8 d².) Each budget's profile takes ``--sizes`` shapes log-spaced around
Chinchilla's rule of thumb D ≈ 20 N (N* ≈ √(C / 120), from N*/--span to N*·--span) over a grid of shapes (heads of ``--head-dim``, aspect ratio
d_model / n_layer in [16, 128]); D = C / (6 N) rounded down to whole steps. The fit is ``fit-scaling-laws`` on the
completed runs; the predicted run is approach 3's N_opt at ``--predict`` (the grid's nearest shape whose D =
C / (6 N) tokens the training split holds, within N_opt's interval), and its predicted loss approach 3's law at
that shape, beside the interval of the optimum's loss.

Writes ``<out>/runs.json`` (the handout's format), ``<out>/fit/`` (results.json and the plots), ``<out>/study.json``
and ``<out>/study.md`` (the tables).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from impl.programs.cli import ArgumentParser, UserError, positive_int, run
from impl.programs.files import atomic_write_text
from impl.programs.fit_scaling_laws import positive_float
from impl.programs.training_api_client import FINISHED, APIError, TrainingAPI

API_KEY = "isoflop-study"
SERVER_START_TIMEOUT_S = 120


def build_parser() -> ArgumentParser:
    parser = ArgumentParser("isoflop-study", "An IsoFLOP sweep through the local training API, the fits, and the "
                                             "predicted run for a larger budget.")
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="train.npy and valid.npy (with their .json) as `tokenize` writes them")
    parser.add_argument("--out", type=Path, default=Path("runs/isoflop-study"))
    parser.add_argument("--budgets", type=positive_float, nargs="+", required=True, help="the sweep's budgets, FLOPs")
    parser.add_argument("--predict", type=positive_float, required=True,
                        help="the budget of the predicted run (the issue asks >= 10x the sweep's largest)")
    parser.add_argument("--sizes", type=positive_int, default=6, help="model sizes per budget")
    parser.add_argument("--span", type=positive_float, default=8.0,
                        help="each profile's sizes reach from N*/span to N*·span (N* = √(C / 120))")
    parser.add_argument("--head-dim", type=positive_int, default=32)
    parser.add_argument("--aspect-ratio", type=positive_float, default=None,
                        help="one shape per width, n_layer = d_model / this (rounded, >= 1), so that N alone sets the "
                             "shape; default: every shape with d_model / n_layer in [16, 128]")
    parser.add_argument("--count", choices=("matmul", "handout"), default="matmul",
                        help="N: 12 L d² + vocab·d (the matrix products' parameters) or the handout's 12 L d²")
    parser.add_argument("--seq-len", type=positive_int, default=512)
    parser.add_argument("--validation-tokens", type=positive_int, default=1 << 17)
    parser.add_argument("--min-steps", type=positive_int, default=50,
                        help="each run's batch is halved (down to 8 sequences) until it has this many steps")
    parser.add_argument("--max-batch-size", type=positive_int, default=128)
    parser.add_argument("--n-evals", type=positive_int, default=4)
    parser.add_argument("--learning-rate", type=positive_float, default=3e-3)
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--devices", default="cuda:0", help="the training API's --devices (e.g. cpu, cuda:0,cuda:1)")
    parser.add_argument("--max-runtime-seconds", type=positive_float, default=1800.0,
                        help="each experiment's reservation (the study's budget is unlimited)")
    parser.add_argument("--max-minutes", type=positive_float, default=0,
                        help="> 0: stop waiting after this long (the experiments stay queued; rerun to continue)")
    parser.add_argument("--loss-law-samples", type=positive_int, default=100, help="bootstrap resamples of approach 3")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv, study)


def shape_grid(head_dim: int, aspect_ratio: float | None = None) -> list[tuple[int, int]]:
    """(n_layer, d_model) with d_model a multiple of head_dim: every shape with d_model / n_layer in [16, 128], or
    with ``aspect_ratio`` one per width. Why fix it: at these sizes the shape matters as much as N (two runs of 2.6M
    parameters and the same tokens, 4 layers d_model 192 and 2 layers d_model 256, ended 0.66 nats apart on the H200:
    bench/results/h200-isoflop-study.md), and a law in N alone cannot see it."""
    if aspect_ratio is not None:
        return [(max(1, round(heads * head_dim / aspect_ratio)), heads * head_dim) for heads in range(1, 65)]
    return [(layers, heads * head_dim) for layers in range(1, 25) for heads in range(1, 65)
            if 16 <= heads * head_dim / layers <= 128]


def parameter_count(layers: int, d_model: int, vocab_size: int, count: str) -> int:
    """N of a shape: 12 L d² (the handout's non-embedding count), plus the LM head's vocab · d for ``matmul``."""
    return 12 * layers * d_model ** 2 + (vocab_size * d_model if count == "matmul" else 0)


def profile_shapes(budget: float, sizes: int, span: float, grid: list[tuple[int, int]],
                   size_of) -> list[tuple[int, int]]:
    """``sizes`` distinct shapes whose N are nearest to targets log-spaced over [N*/span, N*·span], N* = √(C / 120)
    (Chinchilla's D ≈ 20 N)."""
    center = math.sqrt(budget / 120)
    targets = [center * span ** (2 * i / (sizes - 1) - 1) for i in range(sizes)] if sizes > 1 else [center]
    chosen: list[tuple[int, int]] = []
    for target in targets:
        left = [s for s in grid if s not in chosen]
        chosen.append(min(left, key=lambda s: abs(math.log(size_of(s) / target))))
    return sorted(chosen, key=size_of)


def configuration(layers: int, d_model: int, budget: float, args, vocab_size: int) -> dict | None:
    """The training API's body of one run of ``budget`` FLOPs, or None where it would have too few steps."""
    tokens = budget / (6 * parameter_count(layers, d_model, vocab_size, args.count))
    batch = args.max_batch_size
    while batch > 8 and tokens / (batch * args.seq_len) < args.min_steps:
        batch //= 2
    steps = int(tokens // (batch * args.seq_len)) // args.n_evals * args.n_evals
    if steps < args.n_evals:
        return None
    d_ff = max(args.head_dim, round(8 * d_model / 3 / args.head_dim) * args.head_dim)
    return {
        "architecture_config": {
            "attention_bias": False, "head_dim": args.head_dim, "hidden_size": d_model, "intermediate_size": d_ff,
            "num_attention_heads": d_model // args.head_dim, "num_hidden_layers": layers,
            "num_key_value_heads": d_model // args.head_dim, "rms_norm_eps": 1e-5, "rope_theta": 10_000,
            "tie_word_embeddings": False, "dtype": args.dtype, "vocab_size": vocab_size,
        },
        "optimizer_config": {
            "lr_scheduler": {"peak_value": args.learning_rate, "final_lr_frac": 0.1, "warmup_frac": 0.05,
                             "init_value": 0.0},
            "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "eps_root": 0.0, "grad_clip_norm": 1.0,
        },
        "train_batch_size": batch, "val_batch_size": batch, "n_evals": args.n_evals,
        "total_train_tokens": steps * batch * args.seq_len, "max_runtime_seconds": args.max_runtime_seconds,
        "model_seed": 0,
    }


class Server:
    """``training-api`` over the study's state and data, on a free loopback port; its output in ``api/server.log``."""

    def __init__(self, args, state: Path):
        state.mkdir(parents=True, exist_ok=True)
        self.log_path = state / "server.log"
        self.log = open(self.log_path, "a")
        argv = [sys.executable, "-m", "impl.programs.training_api", "--dir", str(state), "--data-dir",
                str(args.data_dir), "--port", "0", "--seq-len", str(args.seq_len), "--validation-tokens",
                str(args.validation_tokens), "--devices", args.devices, "--key", f"{API_KEY}={10**9}"]
        start = self.log_path.stat().st_size
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.log_path.read_text()[start:]
            if "serving http://" in text:
                url = text.split("serving ", 1)[1].split()[0]
                self.api = TrainingAPI(url, API_KEY)
                return
            if self.process.poll() is not None:
                raise UserError(f"training-api exited ({self.process.returncode}): {text.strip()[-500:]}")
            time.sleep(0.2)
        self.stop()
        raise UserError(f"training-api did not start within {SERVER_START_TIMEOUT_S} s (see {self.log_path})")

    def stop(self) -> None:
        self.process.terminate()  # the experiments resume from their last chunk on the next start
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self.log.close()


def predicted_shape(grid: list[tuple[int, int]], size_of, n_opt: dict, trainable, data: str) -> tuple[int, int]:
    """The shape nearest N_opt (``{"estimate", "low", "high"}``) among the ``trainable`` ones (their tokens are in the
    training split: none is read twice). The law's loss is then predicted at that shape's own N and D, so the test
    stays exact when the shape is not N_opt itself; outside N_opt's interval it would no longer test the optimum."""
    nearest = min(filter(trainable, grid), key=lambda s: abs(math.log(size_of(s) / n_opt["estimate"])), default=None)
    # A bootstrap percentile interval can miss its own estimate (few resamples, a skewed fit: seen with 3): the
    # window then reaches to the estimate, the law's own optimum.
    low, high = min(n_opt["low"], n_opt["estimate"]), max(n_opt["high"], n_opt["estimate"])
    if nearest is None or not low <= size_of(nearest) <= high:
        raise UserError(f"no model within N_opt's interval [{low:.3g}, {high:.3g}] trains on at most {data}")
    return nearest


def same_run(a: dict, b: dict) -> bool:
    """One training configuration (the API's 409): every field but max_runtime_seconds."""
    return {**a, "max_runtime_seconds": 0} == {**b, "max_runtime_seconds": 0}


def submitted(api: TrainingAPI, config: dict) -> int:
    """The experiment id of ``config``: submitted now, or found again after an earlier run of the study."""
    try:
        return api.submit(config)["experiment_id"]
    except APIError as error:
        if error.status != 409:
            raise
    return next(e["experiment_id"] for e in api.experiments() if same_run(e["training_config"], config))


def wait_all(api: TrainingAPI, ids: list[int], deadline: float | None) -> dict[int, dict] | None:
    """Each experiment once completed or failed; None when ``deadline`` passes first."""
    from tqdm import tqdm

    done: dict[int, dict] = {}
    with tqdm(total=len(ids), desc="experiments", unit="run", dynamic_ncols=True) as bar:
        while True:
            for experiment_id in ids:
                if experiment_id not in done:
                    experiment = api.experiment(experiment_id)
                    if experiment["status"]["status_type"] in FINISHED:
                        done[experiment_id] = experiment
                        bar.update()
            if len(done) == len(ids):
                return done
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(2)


def final_loss(experiment: dict) -> float | None:
    status = experiment["status"]
    return status["val_losses"][-1] if status["status_type"] == "completed" and status["val_losses"] else None


def law_loss(law: dict, n: float, d: float) -> float:
    return law["E"]["estimate"] + law["A"]["estimate"] / n ** law["alpha"]["estimate"] + \
        law["B"]["estimate"] / d ** law["beta"]["estimate"]


def study(args: argparse.Namespace) -> int:
    from impl.programs import fit_scaling_laws

    if args.predict <= max(args.budgets):
        raise UserError(f"--predict {args.predict:g} must exceed the sweep's largest budget {max(args.budgets):g}")
    try:
        sidecars = {split: json.loads((args.data_dir / f"{split}.json").read_text()) for split in ("train", "valid")}
        vocab_size, train_tokens = int(sidecars["train"]["vocab_size"]), int(sidecars["train"]["num_tokens"])
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"--data-dir {args.data_dir}: no train/valid .npy with their .json ({error})") from None
    grid = shape_grid(args.head_dim, args.aspect_ratio)

    def size_of(shape: tuple[int, int]) -> int:
        return parameter_count(*shape, vocab_size, args.count)

    plan, skipped = [], []
    for budget in sorted(args.budgets):
        for layers, d_model in profile_shapes(budget, args.sizes, args.span, grid, size_of):
            config = configuration(layers, d_model, budget, args, vocab_size)
            if config is None or config["total_train_tokens"] >= train_tokens:
                skipped.append({"budget": budget, "layers": layers, "d_model": d_model,
                                "why": "too few tokens for a step" if config is None else "more tokens than the data"})
            else:
                plan.append({"budget": budget, "layers": layers, "d_model": d_model, "config": config})
    if not plan:
        raise UserError("no run of the sweep fits: every shape has too few steps or more tokens than the data")
    deadline = time.monotonic() + args.max_minutes * 60 if args.max_minutes else None
    server = Server(args, args.out / "api")
    try:
        for run_ in plan:
            run_["id"] = submitted(server.api, run_["config"])
        finished = wait_all(server.api, [r["id"] for r in plan], deadline)
        if finished is None:
            print("isoflop-study: time is up with the sweep unfinished; run the same command again to continue")
            return 0
        runs = []
        for run_ in plan:
            run_["loss"] = final_loss(finished[run_["id"]])
            run_["parameters"] = size_of((run_["layers"], run_["d_model"]))
            if run_["loss"] is not None:
                runs.append({"parameters": run_["parameters"], "compute_budget": run_["budget"],
                             "final_loss": run_["loss"]})
        atomic_write_text(args.out / "runs.json", json.dumps(runs, indent=1) + "\n")
        fit_dir = args.out / "fit"
        if fit_scaling_laws.main(["--runs", str(args.out / "runs.json"), "--targets", str(args.predict),
                                  "--out", str(fit_dir), "--loss-law-samples", str(args.loss_law_samples),
                                  "--plot-up-to", str(args.predict)]) != 0:
            raise UserError("fit-scaling-laws failed on the sweep's runs (its error is above)")
        fit = json.loads((fit_dir / "results.json").read_text())
        optimum = fit["approach_3"]["targets"][0]
        layers, d_model = predicted_shape(
            grid, size_of, optimum["n_opt"],
            lambda s: (c := configuration(*s, args.predict, args, vocab_size)) is not None
            and c["total_train_tokens"] < train_tokens,
            f"the {train_tokens:,} tokens of {args.data_dir} at {args.predict:g} FLOPs")
        config = configuration(layers, d_model, args.predict, args, vocab_size)
        n, d = size_of((layers, d_model)), config["total_train_tokens"]
        predicted = {"budget": args.predict, "layers": layers, "d_model": d_model, "parameters": n, "tokens": d,
                     "loss_law_at_shape": law_loss(fit["approach_3"], n, d), "optimum": optimum,
                     "approach_2": fit["approach_2"]["targets"][0]}
        done = wait_all(server.api, [submitted(server.api, config)], deadline)
        if done is None:
            print("isoflop-study: time is up with the predicted run unfinished; run the same command again")
            return 0
        predicted["actual_loss"] = final_loss(next(iter(done.values())))
    finally:
        server.stop()
    result = {"sweep": [{k: v for k, v in r.items() if k != "config"} for r in plan], "skipped": skipped,
              "predicted": predicted, "fit": fit}
    atomic_write_text(args.out / "study.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(args.out / "study.md", report(result))
    print(report(result))
    return 0


def report(result: dict) -> str:
    p = result["predicted"]
    optimum, law = p["optimum"], result["fit"]["approach_3"]
    lines = ["| budget (FLOPs) | layers | d_model | N | tokens | final loss |", "| --- | --- | --- | --- | --- | --- |"]
    for r in result["sweep"]:
        tokens = r["budget"] / (6 * r["parameters"])
        loss = "failed" if r["loss"] is None else f"{r['loss']:.4f}"
        lines.append(f"| {r['budget']:.3g} | {r['layers']} | {r['d_model']} | {r['parameters']:,} | {tokens:,.0f} | "
                     f"{loss} |")
    lines += ["", f"Loss law (approach 3): L = {law['E']['estimate']:.3f} + {law['A']['estimate']:.4g}/N^"
                  f"{law['alpha']['estimate']:.3f} + {law['B']['estimate']:.4g}/D^{law['beta']['estimate']:.3f}", "",
              "| at C = {:.3g} | N_opt | D_opt | loss |".format(p["budget"]), "| --- | --- | --- | --- |",
              "| approach 3 (95% interval) | {} | {} | {} |".format(*(
                  f"{optimum[k]['estimate']:.4g} ({optimum[k]['low']:.4g}–{optimum[k]['high']:.4g})"
                  for k in ("n_opt", "d_opt", "loss"))),
              "| approach 2 (95% interval) | {} | {} | |".format(*(
                  f"{p['approach_2'][k]['estimate']:.4g} ({p['approach_2'][k]['low']:.4g}–"
                  f"{p['approach_2'][k]['high']:.4g})" for k in ("n_opt", "d_opt"))),
              f"| the run: {p['layers']} layers, d_model {p['d_model']} | {p['parameters']:,} | {p['tokens']:,} | "
              f"predicted {p['loss_law_at_shape']:.4f}, actual "
              f"{'failed' if p['actual_loss'] is None else format(p['actual_loss'], '.4f')} |"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
