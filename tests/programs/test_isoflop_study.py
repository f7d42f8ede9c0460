"""bench.scaling.isoflop_study end to end on the CPU, at toy budgets: the sweep through the training API, the fit,
the predicted run; stopped by its time limit and run again, it continues without running anything twice."""

from __future__ import annotations

import json
import math

import pytest

from bench.common import parse_tables
from bench.scaling import context_use, isoflop_study, study_data
from impl.programs.corpora import EOT
from impl.programs.training_api_client import TrainingAPI
from tests.programs.bad_inputs import error_lines

TOY = ["--budgets", "1e10", "3e10", "--predict", "1e11", "--sizes", "3", "--head-dim", "16", "--seq-len", "32",
       "--validation-tokens", "4096", "--min-steps", "20", "--max-batch-size", "32", "--dtype", "float32",
       "--devices", "cpu,cpu", "--loss-law-samples", "3"]  # two experiments at once: the 2 cores


@pytest.mark.parametrize("n_opt, expected", [
    ({"estimate": 100, "low": 50, "high": 200}, (1, 100)),
    ({"estimate": 100, "low": 400, "high": 800}, (1, 100)),  # an interval that misses its estimate (few resamples)
    ({"estimate": 1000, "low": 900, "high": 1100}, None),    # no trainable shape near the optimum
])
def test_the_predicted_run_is_the_trainable_shape_nearest_n_opt_within_its_interval(n_opt, expected):
    grid = [(1, 100), (1, 400), (1, 1600)]
    size_of = lambda shape: shape[1]  # noqa: E731
    trainable = lambda shape: shape[1] <= 400  # noqa: E731
    if expected is None:
        with pytest.raises(isoflop_study.UserError, match=r"no model within N_opt's interval \[900, 1.1e\+03\]"):
            isoflop_study.predicted_shape(grid, size_of, n_opt, trainable, "the data")
    else:
        assert isoflop_study.predicted_shape(grid, size_of, n_opt, trainable, "the data") == expected


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
    # The study's runs read back by bench.scaling.context_use: a row each, its loss the run's own validation loss.
    assert context_use.main(["--experiments", str(out / "api" / "experiments"), "--valid",
                             str(prose_tokens / "valid.npy"), "--out", str(out / "context"), "--windows", "8"]) == 0
    ((header, rows),) = parse_tables((out / "context" / "context.md").read_text())
    assert len(rows) == len(experiments) and (out / "context" / "context.png").stat().st_size > 0
    assert all(0 < float(row[header.index("valid loss")]) < 8 for row in rows)


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


def test_a_fixed_aspect_ratio_gives_one_shape_per_width_its_depth_the_width_over_the_ratio():
    grid = isoflop_study.shape_grid(32, aspect_ratio=64)
    assert [d_model for _, d_model in grid] == [32 * heads for heads in range(1, 65)]
    assert grid[:5] == [(1, 32), (1, 64), (2, 96), (2, 128), (2, 160)]  # at least one layer; rounded to even
    assert grid[-1] == (32, 2048)
    free = isoflop_study.shape_grid(32)
    assert len(free) > len(grid) and all(16 <= d / layers <= 128 for layers, d in free)


def test_the_predicted_run_is_the_trainable_shape_nearest_n_opt_and_stays_within_its_interval():
    grid = [(1, 16), (1, 32), (2, 32), (4, 64)]
    size_of = {shape: n for shape, n in zip(grid, (1e3, 2e3, 4e3, 3e4))}.__getitem__
    n_opt = {"estimate": 2.2e3, "low": 1.5e3, "high": 1e4}
    assert isoflop_study.predicted_shape(grid, size_of, n_opt, lambda s: True, "data") == (1, 32)
    # The nearest needs more tokens than the data hold: the next one inside the interval.
    assert isoflop_study.predicted_shape(grid, size_of, n_opt, lambda s: s != (1, 32), "data") == (2, 32)
    # Only shapes outside the interval fit (1e3 below it, 3e4 above): refused, naming the interval and the data.
    with pytest.raises(isoflop_study.UserError, match=r"interval \[1\.5e\+03, 1e\+04\] trains on at most data"):
        isoflop_study.predicted_shape(grid, size_of, n_opt, lambda s: s in {(1, 16), (4, 64)}, "data")


def test_the_study_data_are_pieces_of_whole_lines_every_document_in_one_split_nothing_lost(tmp_path):
    lines = [f"line {i} " + "x" * (i % 13) + "\n" for i in range(400)]
    documents = ["".join(lines[i:i + 40]) for i in range(0, 400, 40)] + ["one long line without an end " * 20]
    for document in documents:
        cut = study_data.pieces(document, 100)
        assert "".join(cut) == document
        assert all(len(p) >= 100 or p is cut[-1] for p in cut)  # only the last piece is short
        assert all(p.endswith("\n") or p is cut[-1] for p in cut)  # cut at line ends only
    corpus = EOT.join(documents)
    train, valid = study_data.study_splits(corpus, held_out_every=4, piece_chars=100, seed=0)
    held_out = documents[::4]
    assert sorted(valid) == sorted(p for d in held_out for p in study_data.pieces(d, 100))
    assert sorted(train) == sorted(p for i, d in enumerate(documents) if i % 4 for p in study_data.pieces(d, 100))
    assert train != [p for i, d in enumerate(documents) if i % 4 for p in study_data.pieces(d, 100)]  # shuffled
    assert (train, valid) == study_data.study_splits(corpus, held_out_every=4, piece_chars=100, seed=0)
    (tmp_path / "corpus.txt").write_text(corpus, encoding="utf-8")
    assert study_data.main([str(tmp_path / "corpus.txt"), str(tmp_path / "out"), "--held-out-every", "4",
                            "--piece-chars", "100"]) == 0
    assert (tmp_path / "out" / "train.txt").read_text(encoding="utf-8") == EOT.join(train)
    assert (tmp_path / "out" / "valid.txt").read_text(encoding="utf-8") == EOT.join(valid)
