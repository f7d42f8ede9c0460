"""The reference's ``train`` program: exact resume after SIGKILL, config precedence, and bad input.

Runs on a tiny model and a synthetic corpus (a random first-order Markov chain, so there is
something to learn: tests/programs/tiny_training.py, the ``data`` fixture of conftest.py) to stay
within seconds; the embedded-corpus run is test_embedded_run.py.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from impl.programs.config import MODEL_FIELDS, TrainConfig
from impl.programs.files import umask
from impl.programs.train import build_parser, given_settings, main
from impl.programs.trainer import Trainer, TrainingError, sequential_batch
from impl.train import read_checkpoint
from tests.harness.helpers import REPO
from tests.programs.bad_inputs import error_lines
from tests.programs.tiny_training import args, trajectory


def run_program(argv: list[str], **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "impl.programs.train", *argv], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_a_run_killed_and_resumed_follows_the_uninterrupted_trajectory_bit_for_bit(data, tmp_path):
    """SIGKILL after a checkpoint, then the README's ``train --out-dir D --resume`` (the settings come from the
    checkpoint): every logged loss, lr and grad norm equals the uninterrupted run's."""
    steps = ["--max-steps", "120", "--log-interval", "1", "--eval-interval", "30", "--checkpoint-interval", "20"]
    straight = run_program(args(data, tmp_path / "straight", *steps))
    interrupted = run_program(args(data, tmp_path / "interrupted", *steps))
    metrics = tmp_path / "interrupted" / "metrics.jsonl"
    rows, deadline = 0, time.monotonic() + 300  # 300 s without a new row: stuck, however busy the machine
    while rows < 47:  # past the checkpoints at 20, 40
        assert interrupted.poll() is None, f"the run ended before it could be killed: {interrupted.communicate()}"
        assert time.monotonic() < deadline, "the run made no progress"
        seen = len(metrics.read_text().splitlines()) if metrics.exists() else 0
        rows, deadline = seen, (time.monotonic() + 300 if seen > rows else deadline)
        time.sleep(0.01)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert not (tmp_path / "interrupted" / "summary.json").exists()
    killed_at = len(metrics.read_text().splitlines())
    assert 40 <= read_checkpoint(tmp_path / "interrupted" / "checkpoint.pt")["iteration"] < killed_at < 120
    resumed = run_program(["--out-dir", str(tmp_path / "interrupted"), "--resume"])  # the README's command
    for process in (straight, resumed):
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    assert trajectory(tmp_path / "interrupted") == trajectory(tmp_path / "straight")
    assert [r["step"] for r in trajectory(tmp_path / "straight")] == list(range(1, 121))


def test_training_lowers_the_loss_and_writes_its_outputs(data, tmp_path, capsys):
    """Loss falls well below the data's unigram entropy; metrics, plot, summary and checkpoint are written."""
    out = tmp_path / "run"
    assert main(args(data, out, "--max-steps", "150", "--log-interval", "10", "--eval-interval", "50")) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["train_loss"] > summary["val_unigram_entropy"] > summary["val_loss"] + 0.3
    assert {"step", "tokens", "wall_s", "lr", "train_loss", "grad_norm", "tokens_per_s"} <= set(rows[0])
    assert [r["step"] for r in rows if "val_loss" in r] == [50, 100, 150]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    checkpoint = read_checkpoint(out / "checkpoint.pt")
    assert checkpoint["iteration"] == 150 and checkpoint["config"]["d_model"] == 32
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind
    readable = 0o666 & ~umask()  # what a plain open() gives: colleagues can read the run
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {p.name: readable for p in out.iterdir()}


def settings(argv: list[str]) -> TrainConfig:
    """The config a fresh run of ``train argv`` trains with."""
    return TrainConfig(**given_settings(build_parser().parse_args(argv)))


def test_sequential_batches_are_consecutive_windows_each_token_an_input_once():
    """data_order sequential: batch i holds windows i·B … i·B + B − 1 of the token stream, targets shifted by one;
    the batches in order read every token once."""
    tokens = np.arange(1000, dtype=np.uint16)
    batches = [sequential_batch(tokens, index, 4, 8, "cpu") for index in range(3)]
    inputs = torch.cat([x.flatten() for x, _ in batches])
    assert inputs.tolist() == list(range(3 * 4 * 8)) and all(torch.equal(y, x + 1) for x, y in batches)
    assert all(x.dtype == torch.int64 and x.shape == (4, 8) for x, _ in batches)


def test_the_sequential_order_is_the_same_for_every_seed_and_the_random_one_is_not(data, tmp_path):
    """The A3 training API's data order: model_seed changes the initialization, not the batches."""
    def batch_of(order: str, seed: int) -> torch.Tensor:
        trainer = Trainer(settings(args(data, tmp_path / f"{order}-{seed}", "--data-order", order,
                                        "--seed", str(seed), "--max-steps", "100")))
        try:
            return trainer.batch(trainer.train_tokens, trainer.sampler, 3, trainer.cfg.batch_size)[0]
        finally:
            trainer.close()

    assert torch.equal(batch_of("sequential", 0), batch_of("sequential", 1))
    assert not torch.equal(batch_of("random", 0), batch_of("random", 1))


def test_validation_reads_the_same_tokens_whatever_eval_batch_size(data, tmp_path):
    """The A3 training API's val_batch_size: in the sequential order, 8 validation batches of 4 windows and 2 of 16
    read the same windows, so they give the same loss (to float32 rounding); the size is not the training batch's."""
    def validation_loss(eval_batch_size: int, eval_batches: int) -> float:
        trainer = Trainer(settings(args(data, tmp_path / f"eval-{eval_batch_size}", "--data-order", "sequential",
                                        "--eval-batch-size", str(eval_batch_size), "--eval-batches", str(eval_batches),
                                        "--max-steps", "10")))
        try:
            return trainer.validation_loss()
        finally:
            trainer.close()

    assert validation_loss(4, 8) == pytest.approx(validation_loss(16, 2), rel=1e-5)


def test_a_sequential_run_longer_than_its_data_is_refused_before_training(data, tmp_path, capsys):
    """200 steps of 8 windows of 32 tokens need 51,201 tokens; the training split holds 40,000."""
    err = error_of(args(data, tmp_path / "run", "--data-order", "sequential", "--max-steps", "200"), capsys)
    assert "max_steps=200 batches" in err and "need 51,201 tokens (no token used twice)" in err, err
    assert not (tmp_path / "run").exists()


def test_unknown_kernels_are_refused_before_training(data, tmp_path, capsys):
    err = error_of(args(data, tmp_path / "run", "--kernels", "attention,fused_adam", "--parallel", "fsdp"), capsys)
    assert "kernels='attention,fused_adam': unknown 'fused_adam'" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("more, needs", [
    ([], "needs compile=true and a CUDA device"),
    (["--compile"], "needs a CUDA device"),
    (["--compile", "--parallel", "ddp"], "needs a CUDA device and parallel='none'"),
])
def test_cuda_graphs_are_refused_without_what_they_replay(data, tmp_path, capsys, more, needs):
    err = error_of(args(data, tmp_path / "run", "--kernels", "attention,cudagraphs", "--device", "cpu", *more), capsys)
    assert f"kernels='attention,cudagraphs' {needs} (cudagraphs replays the compiled step" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.gpu
def test_cuda_graphs_train_as_the_compiled_step_without_them(data, tmp_path):
    """kernels cudagraphs (torch.compile's reduce-overhead) replays the same compiled step: the same losses, the
    validation losses too, as compile alone, in float32 (bf16 autocast would allow other kernel choices); and the
    graphs were recorded, not skipped (Inductor falls back to plain launches, with a warning, where it cannot)."""
    from torch._dynamo.utils import counters

    runs = {}
    for kernels in ("none", "cudagraphs"):
        counters.clear()
        out = tmp_path / kernels
        assert main(args(data, out, "--device", "cuda", "--precision", "fp32", "--compile", "--max-steps", "12",
                         "--log-interval", "3", "--eval-interval", "6", "--kernels", kernels)) == 0
        runs[kernels] = trajectory(out)
    assert counters["inductor"]["cudagraph_skips"] == 0 and counters["inductor"]["cudagraph_recorded_non_static_inputs"]
    for plain, graphed in zip(runs["none"], runs["cudagraphs"], strict=True):
        assert plain.keys() == graphed.keys()
        for key in plain.keys() & {"train_loss", "val_loss"}:
            assert graphed[key] == pytest.approx(plain[key], rel=1e-5), (key, plain["step"])


def test_config_file_then_flags_override_defaults(tmp_path):
    """Precedence: TrainConfig defaults < the TOML file < command-line flags."""
    config = tmp_path / "run.toml"
    config.write_text('d_model = 64\nlr_max = 3e-3\ncompile = true\nout_dir = "somewhere"\n')
    cfg = settings(["--config", str(config), "--lr-max", "1e-4", "--no-compile"])
    assert (cfg.d_model, cfg.lr_max, cfg.compile, cfg.out_dir, cfg.num_layers) == (64, 1e-4, False, "somewhere", 4)


def test_unknown_config_settings_are_refused(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("d_modle = 64\n")
    assert "unknown settings ['d_modle']" in error_of(["--config", str(config)], capsys)


def error_of(argv: list[str], capsys) -> str:
    """The one line of stderr of a run that is refused."""
    assert main(argv) == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("train: error: "), lines
    return lines[0]


def test_missing_data_file_is_named(data, tmp_path, capsys):
    argv = args(data, tmp_path / "run", "--max-steps", "5")
    argv[argv.index("--valid-data") + 1] = str(tmp_path / "nowhere.npy")
    assert "nowhere.npy does not exist" in error_of(argv, capsys)


def test_vocab_smaller_than_the_largest_token_id_is_refused(data, tmp_path, capsys):
    err = error_of(args(data, tmp_path / "run", "--max-steps", "5", "--vocab-size", "16"), capsys)
    assert "contains token id" in err and "vocab_size=16" in err


def test_context_longer_than_the_data_is_refused(data, tmp_path, capsys):
    np.save(tmp_path / "short.npy", np.arange(20, dtype=np.uint16))
    argv = args(data, tmp_path / "run", "--max-steps", "5")
    argv[argv.index("--valid-data") + 1] = str(tmp_path / "short.npy")
    assert "too few for context_length=32" in error_of(argv, capsys)


def test_an_existing_run_is_not_overwritten_without_resume(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(args(data, out, "--max-steps", "5")) == 0
    assert "pass --resume" in error_of(args(data, out, "--max-steps", "5"), capsys)


def test_diverging_parameters_stop_the_run_and_keep_the_last_good_checkpoint(data, tmp_path, capsys):
    """A learning rate of 1e15 overflows the weights within a few steps: no checkpoint of them is written."""
    out = tmp_path / "run"
    err = error_of(args(data, out, "--max-steps", "20", "--lr-max", "1e15", "--warmup-steps", "10",
                        "--log-interval", "1", "--checkpoint-interval", "1"), capsys)
    assert "not finite" in err and "is intact" in err
    checkpoint = read_checkpoint(out / "checkpoint.pt")
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(data, tmp_path):
    """The loss turning NaN after step 12 stops at the next logging step; the step-10 checkpoint survives."""
    cfg = settings(args(data, tmp_path / "run", "--max-steps", "30", "--log-interval", "5",
                        "--checkpoint-interval", "10"))
    trainer = Trainer(cfg)
    model_loss = trainer.loss

    def poisoned(x, y):
        return model_loss(x, y) * float("nan") if trainer.step >= 12 else model_loss(x, y)

    trainer.loss = poisoned
    with pytest.raises(TrainingError, match=r"train loss is nan in steps 11..15.*checkpoint.pt \(step 10\) is intact"):
        trainer.run()
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["iteration"] == 10


def test_a_full_disk_while_saving_leaves_the_previous_checkpoint_intact(data, tmp_path):
    """The file-size limit makes the second checkpoint's write fail (EFBIG), as a full disk would (ENOSPC)."""
    out = tmp_path / "run"
    assert main(args(data, out, "--max-steps", "10")) == 0
    before = (out / "checkpoint.pt").read_bytes()

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write(), not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, len(before) // 2))

    resumed = run_program(args(data, out, "--max-steps", "20", "--resume", "--override"), preexec_fn=limit_file_size)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 1
    assert "could not write the checkpoint at step 20" in err and "(step 10) is intact" in err
    assert (out / "checkpoint.pt").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # the partial temp file is removed


@pytest.mark.parametrize("change", [["--lr-max", "5e-3"], ["--max-steps", "40"], ["--batch-size", "4"],
                                    ["--seed", "1"], ["--warmup-steps", "3"], ["--d-model", "64"],
                                    ["--num-kv-heads", "1"], ["--tie-embeddings"]],
                         ids=lambda change: change[0])
def test_a_resume_that_would_change_the_run_is_refused_naming_the_setting(data, tmp_path, capsys, change):
    out = tmp_path / "run"
    assert main(args(data, out, "--max-steps", "10")) == 0
    before = (out / "checkpoint.pt").read_bytes()
    name = change[0][2:].replace("-", "_")
    err = error_of(["--out-dir", str(out), "--resume", *change], capsys)
    assert f"{name} " in err and ("--resume would change what" in err and "--override" in err
                                  or name in MODEL_FIELDS and "holds the weights of another model" in err)
    assert (out / "checkpoint.pt").read_bytes() == before
    if name in MODEL_FIELDS:  # the weights fix the model: no override makes them fit another
        assert "a resume cannot change the model" in error_of(["--out-dir", str(out), "--resume", *change,
                                                               "--override"], capsys)
    else:
        assert main(["--out-dir", str(out), "--resume", "--max-steps", "12", *change, "--override"]) == 0
        assert "resuming with changed settings (--override): " in capsys.readouterr().err


# The train program, stopped inside its second checkpoint write (after the temp file is written, before the rename)
# until the test SIGKILLs it: a kill in the middle of a write, every time.
KILLED_IN_WRITE = """
import os, sys, time
real_fsync, writes = os.fsync, 0

def fsync(fd):
    global writes
    if ".checkpoint.pt." in os.readlink(f"/proc/self/fd/{fd}"):
        writes += 1
        if writes == 2:
            open(sys.argv[1], "w").close()
            time.sleep(3600)
    real_fsync(fd)

os.fsync = fsync
from impl.programs.train import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds the file being written through /proc")
def test_runs_killed_inside_checkpoint_writes_leave_no_temp_file_and_resume_exactly(data, tmp_path):
    """8 runs SIGKILLed inside a checkpoint write: each resume removes the temp file the last kill left, the last
    one finishes with no temp file in out_dir, and the run equals the uninterrupted one."""
    out, kills = tmp_path / "run", 8
    steps = ["--max-steps", str(2 * kills + 4), "--log-interval", "1", "--eval-interval", "100",
             "--checkpoint-interval", "2"]
    assert main(args(data, tmp_path / "straight", *steps)) == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for kill in range(kills):
        marker = tmp_path / f"writing{kill}"
        argv = args(data, out, *steps) if kill == 0 else ["--out-dir", str(out), "--resume"]
        with open(tmp_path / "stderr.txt", "w") as err:
            process = subprocess.Popen([sys.executable, "-c", KILLED_IN_WRITE, str(marker), *argv], env=env, cwd=REPO,
                                       stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert process.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "the run did not reach its second checkpoint write"
            time.sleep(0.02)
        # Only this write's temp file: the one the previous kill left was removed when this run started.
        assert len(list(out.glob(".checkpoint.pt.*.tmp"))) == 1
        process.kill()
        process.wait()
        assert read_checkpoint(out / "checkpoint.pt")["iteration"] == 2 * kill + 2  # the last good one
    assert main(["--out-dir", str(out), "--resume"]) == 0
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert trajectory(out) == trajectory(tmp_path / "straight")
