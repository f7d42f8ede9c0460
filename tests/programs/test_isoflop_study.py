"""bench.scaling.isoflop_study end to end on the CPU, at toy budgets: the sweep through the training API, the fit,
the predicted run; stopped by its time limit and run again, it continues without running anything twice."""

from __future__ import annotations

import json
import math

import pytest

from bench.scaling import isoflop_study
from impl.programs.training_api_client import TrainingAPI
from tests.programs.bad_inputs import error_lines

TOY = ["--budgets", "1e10", "3e10", "--predict", "1e11", "--sizes", "3", "--head-dim", "16", "--seq-len", "32",
       "--validation-tokens", "4096", "--min-steps", "20", "--max-batch-size", "32", "--dtype", "float32",
       "--devices", "cpu,cpu", "--loss-law-samples", "3"]  # two experiments at once: the 2 cores


def test_a_study_stopped_by_its_time_limit_continues_and_predicts_a_loss(prose_tokens, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["--data-dir", str(prose_tokens), "--out", str(out), *TOY]
    assert isoflop_study.main([*argv, "--max-minutes", "0.05"]) == 0  # 3 s: the sweep cannot finish
    assert "time is up" in capsys.readouterr().out and not (out / "study.json").exists()
    assert isoflop_study.main(argv) == 0
    study = json.loads((out / "study.json").read_text())
    runs = json.loads((out / "runs.json").read_text())
    assert len(runs) == len(study["sweep"]) >= 5 and {r["compute_budget"] for r in runs} == {1e10, 3e10}
    assert all(set(r) == {"parameters", "compute_budget", "final_loss"} and 0 < r["final_loss"] < 6 for r in runs)
    predicted = study["predicted"]
    assert predicted["budget"] == 1e11 and math.isfinite(predicted["actual_loss"])
    vocab = json.loads((prose_tokens / "train.json").read_text())["vocab_size"]
    layers, width = predicted["layers"], predicted["d_model"]
    assert predicted["parameters"] == 12 * layers * width ** 2 + vocab * width  # --count matmul: the LM head too
    optimum = study["fit"]["approach_3"]["targets"][0]["loss"]
    assert optimum["low"] <= optimum["estimate"] <= optimum["high"]
    assert "| the run: " in (out / "study.md").read_text()
    # Every experiment ran once: the sweep's and the predicted run, none submitted twice by the second start.
    server = isoflop_study.Server(isoflop_study.build_parser().parse_args(argv), out / "api")
    try:
        experiments = TrainingAPI(server.api.base_url, isoflop_study.API_KEY).experiments()
    finally:
        server.stop()
    assert len(experiments) == len(study["sweep"]) + 1
    assert all(e["status"]["status_type"] == "completed" for e in experiments)


def test_a_predicted_budget_within_the_sweep_is_refused_before_any_work(prose_tokens, tmp_path, capsys):
    argv = ["--data-dir", str(prose_tokens), "--out", str(tmp_path / "study"), *TOY]
    argv[argv.index("--predict") + 1] = "3e10"
    assert isoflop_study.main(argv) == 1
    assert error_lines(capsys.readouterr().err) == [
        "isoflop-study: error: --predict 3e+10 must exceed the sweep's largest budget 3e+10"]
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("missing", ["train.json", "valid.json"])
def test_data_without_its_sidecars_is_refused(prose_tokens, tmp_path, capsys, missing):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.npy", "valid.npy", "train.json", "valid.json"):
        if name != missing:
            (data / name).write_bytes((prose_tokens / name).read_bytes())
    assert isoflop_study.main(["--data-dir", str(data), "--out", str(tmp_path / "study"), *TOY]) == 1
    assert "no train/valid .npy with their .json" in capsys.readouterr().err
