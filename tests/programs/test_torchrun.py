"""The ``train`` program under torchrun: every parallel mode equals one process on the global batch.

Two processes on the CPU (gloo), launched as a user would, ``python -m torch.distributed.run
--standalone --nproc-per-node 2`` (a free port from the rendezvous, never a fixed one), on the tiny
model and Markov corpus of tests/programs/tiny_training.py. A launch costs seconds on a busy 2-core machine, so
the runs of all modes share one launch and one process group through tests/programs/train_many.py; the
real command line (the program making its own group) is launched once more, and once with a rank that fails.

The learning rate is flat after a 2-step warm-up (lr_min = lr_max), so that a run of 3 steps resumed to
6 follows the run of 6 steps exactly: the schedule does not depend on max_steps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from impl.programs.launch import DataParallel
from impl.train import read_checkpoint
from impl.programs.train import main
from tests.harness.helpers import REPO
from tests.harness.multiprocess import run_ranks
from tests.programs.tiny_training import args, trajectory

MODES = ("ddp", "ddp_bucketed", "sharded_optimizer", "fsdp")
FLAT = ["--warmup-steps", "2", "--lr-min", "1e-2", "--log-interval", "1", "--eval-interval", "3",
        "--checkpoint-interval", "3", "--bucket-size-mb", "0.01"]  # 0.01 MiB: several buckets in this model
OUTPUTS = {"checkpoint.pt", "metrics.jsonl", "loss.png", "summary.json"}
TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                 "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID")


def run_args(data: Path, out: Path, steps: int, *more: str) -> list[str]:
    return args(data, out, *FLAT, "--max-steps", str(steps), *more)


def torchrun(*program: str, launcher: tuple[str, ...] = (), timeout: float = 400) -> subprocess.CompletedProcess:
    """Launch ``program`` on 2 ranks; past ``timeout`` the launcher gets SIGTERM, on which torchrun stops its workers
    (they run in sessions of their own: killing the launcher alone would leave them behind), and the test fails."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS} | {"PYTHONPATH": str(REPO),
                                                                           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *launcher,
               *program]
    with subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            try:
                out, err = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
            pytest.fail(f"torchrun did not finish within {timeout} s: {' '.join(command)}\n{err[-5000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def train_many(tmp_path: Path, runs: list, **kwargs):
    plan = tmp_path / "runs.json"
    plan.write_text(json.dumps(runs))
    return torchrun("-m", "tests.programs.train_many", str(plan), **kwargs)


def assert_same_run(got: list[dict], expected: list[dict], rel: float = 1e-5) -> None:
    """The same steps, tokens and learning rates; losses and grad norms equal within float32 rounding."""
    assert [r["step"] for r in got] == [r["step"] for r in expected]
    for row, ref in zip(got, expected):
        assert set(row) == set(ref) and (row["tokens"], row["lr"]) == (ref["tokens"], ref["lr"])
        for key in set(ref) - {"step", "tokens", "lr"}:
            assert row[key] == pytest.approx(ref[key], rel=rel), f"step {row['step']}: {key}"


def assert_close_tensors(got, expected) -> None:
    """Nested dicts / lists of tensors and numbers: same structure, tensors equal within float32 rounding."""
    if isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            assert_close_tensors(got[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_close_tensors(g, e)
    elif torch.is_tensor(expected):
        assert got.shape == expected.shape and got.dtype == expected.dtype
        scale = expected.abs().max().item() if expected.numel() else 0.0
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * scale)
    else:
        assert got == expected


@pytest.mark.distributed
@pytest.mark.slow
def test_every_mode_trains_as_one_process_and_its_checkpoints_resume_anywhere(data, tmp_path):
    """Per mode, under torchrun with 2 ranks: 6 steps equal one process's 6 steps on the global batch; 3 steps
    resumed under torchrun to 6 equal the 6 steps bit for bit; a torchrun checkpoint resumed in one process, and a
    one-process checkpoint resumed under torchrun, continue the same run; the checkpoint is the one-process form;
    only rank 0 wrote (one set of files, every metrics row once). FSDP with the LM head inside the loss (kernels
    lm_head) trains as one process too."""
    start = time.monotonic()
    single = tmp_path / "single"
    assert main(run_args(data, single, 6)) == 0
    assert main(run_args(data, tmp_path / "single_half", 3)) == 0  # resumed below under torchrun, by FSDP
    # Resumed to 6 steps from runs of 3: --override for max_steps (the schedule is flat: lr_min = lr_max).
    runs = [run_args(data, tmp_path / "single_half", 6, "--parallel", "fsdp", "--resume", "--override")]
    for mode in MODES:
        out = tmp_path / mode
        runs += [run_args(data, out / "straight", 6, "--parallel", mode),
                 run_args(data, out / "half", 3, "--parallel", mode),
                 run_args(data, out / "half", 6, "--parallel", mode, "--resume", "--override"),
                 run_args(data, out / "handover", 3, "--parallel", mode)]  # resumed below in one process
    # The LM head applied inside the loss (kernels lm_head): FSDP gathers its sharded weight for the loss too.
    runs.append(run_args(data, tmp_path / "fsdp_lm_head", 6, "--parallel", "fsdp", "--kernels", "lm_head"))
    launched = train_many(tmp_path, runs)
    assert launched.returncode == 0, launched.stderr[-5000:]
    for mode in MODES:
        assert main(run_args(data, tmp_path / mode / "handover", 6, "--resume", "--override")) == 0
    print(f"one launch of {len(runs)} torchrun runs and 7 one-process runs: {time.monotonic() - start:.0f} s")

    expected = trajectory(single)
    reference = read_checkpoint(single / "checkpoint.pt")
    assert_same_run(trajectory(tmp_path / "single_half"), expected)
    for mode in MODES:
        out = tmp_path / mode
        assert_same_run(trajectory(out / "straight"), expected)
        assert trajectory(out / "half") == trajectory(out / "straight"), f"{mode}: resumed under torchrun"
        assert trajectory(out / "handover")[:3] == trajectory(out / "straight")[:3]
        assert_same_run(trajectory(out / "handover"), expected)
        for run in ("straight", "half", "handover"):
            assert {p.name for p in (out / run).iterdir()} == OUTPUTS, f"{mode}/{run}: temp or stray files"
        # The single-process form: the unwrapped model's keys and whole tensors, AdamW's state over all of them.
        checkpoint = read_checkpoint(out / "straight" / "checkpoint.pt")
        assert checkpoint["iteration"] == 6 and checkpoint["config"]["parallel"] == mode
        assert_close_tensors(checkpoint["model"], reference["model"])
        assert_close_tensors(checkpoint["optimizer"], reference["optimizer"])
        assert checkpoint["sampler_state"] == reference["sampler_state"]
    assert_same_run(trajectory(tmp_path / "fsdp_lm_head"), expected)
    fused_head = read_checkpoint(tmp_path / "fsdp_lm_head" / "checkpoint.pt")
    assert_close_tensors(fused_head["model"], reference["model"])
    assert_close_tensors(fused_head["optimizer"], reference["optimizer"])


@pytest.mark.distributed
@pytest.mark.slow
def test_the_torchrun_command_line_prints_and_writes_from_rank_0_only(data, tmp_path):
    """``torchrun ... -m impl.programs.train --parallel ...``: rank 0 shows the progress bar and the summary,
    rank 1 prints nothing (each rank's output captured by torchrun's --log-dir)."""
    out = tmp_path / "run"
    launched = torchrun("-m", "impl.programs.train", *run_args(data, out, 4, "--parallel", "sharded_optimizer"),
                        launcher=("--log-dir", str(tmp_path / "logs"), "--redirects", "3"))
    assert launched.returncode == 0, launched.stderr[-5000:]
    logs = {(path.parent.name, path.name): path.read_text() for path in (tmp_path / "logs").rglob("*.log")}
    assert logs[("0", "stdout.log")].count("train: {") == 1 and "4/4" in logs[("0", "stderr.log")]
    assert logs[("1", "stdout.log")] == "" and "train" not in logs[("1", "stderr.log")]
    assert {p.name for p in out.iterdir()} == OUTPUTS
    assert [r["step"] for r in trajectory(out)] == [1, 2, 3, 4]


@pytest.mark.distributed
@pytest.mark.slow
def test_an_error_on_one_rank_ends_the_job(data, tmp_path):
    """Rank 1 raising at step 3 while rank 0 waits in a collective: the job exits with rank 1's error, no hang."""
    start = time.monotonic()
    launched = train_many(tmp_path, [{"fail_on_rank": 1, "at_step": 3},
                                     run_args(data, tmp_path / "run", 50, "--parallel", "ddp",
                                              "--dist-timeout-minutes", "1")], timeout=300)
    assert launched.returncode != 0
    assert "injected failure on rank 1 at step 3" in launched.stderr
    print(f"the failed job ended after {time.monotonic() - start:.0f} s")


def fail_to_write_on_rank_0(rank: int, world_size: int) -> str:
    parallel = DataParallel("ddp", "cpu", batch_sizes={"batch_size": 2}, bucket_size_mb=25.0, timeout_minutes=1.0)  # the harness's group

    def write():
        raise OSError(28, "No space left on device")

    try:
        parallel.on_rank_0(write, RuntimeError)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return "no error"


@pytest.mark.distributed
def test_a_failed_write_on_rank_0_stops_every_rank_with_its_message():
    """Only rank 0 writes files; when that fails the other ranks hear why and stop too, instead of waiting."""
    assert run_ranks(fail_to_write_on_rank_0, 2) == [
        "OSError: [Errno 28] No space left on device",
        "RuntimeError: rank 0 failed, so rank 1 stops too: OSError: [Errno 28] No space left on device"]


def test_parallel_modes_outside_torchrun_are_refused(data, tmp_path, capsys, monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert main(run_args(data, tmp_path / "run", 2, "--parallel", "ddp")) == 1
    assert "parallel='ddp' needs the processes and environment torchrun provides" in capsys.readouterr().err
    assert main(run_args(data, tmp_path / "run", 2, "--parallel", "zero3")) == 2  # a usage error
    assert "argument --parallel: invalid choice: 'zero3'" in capsys.readouterr().err


def test_launches_that_cannot_split_the_batch_are_refused(data, tmp_path, capsys, monkeypatch):
    """Checked from torchrun's environment before any process group is made (so no peer is needed here)."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert main(run_args(data, tmp_path / "run", 2, "--parallel", "fsdp")) == 1
    assert "batch_size=8 is not divisible by the world size 3" in capsys.readouterr().err
    assert main(run_args(data, tmp_path / "run", 2, "--parallel", "fsdp", "--batch-size", "9",
                         "--eval-batch-size", "4")) == 1
    assert "eval_batch_size=4 is not divisible by the world size 3" in capsys.readouterr().err
    assert main(run_args(data, tmp_path / "run", 2)) == 1
    assert "launched as 3 processes but parallel='none'" in capsys.readouterr().err
