"""The training API's worker: queued experiments run with the ``train`` program, one process each, on the server's
devices (one experiment per device at a time; ``cpu,cpu`` runs two at once on the CPU).

An experiment is ``python -m impl.programs.train`` on a config this module writes (training_api_config's
``train_settings``) in ``<experiments>/<id>/``: it evaluates and checkpoints after every chunk and stops itself at
``max_runtime_seconds`` of its own clock, with a checkpoint. The runner reads the chunks' validation losses from its
``metrics.jsonl`` while it runs, and its ``summary.json`` at the end:

- completed: ``summary.json`` without ``stopped_early``; charged the trainer's wall-clock, clipped to [1 s, max];
- failed, timeout: the trainer stopped at its limit, or the process outlived ``max_runtime_seconds`` plus the
  start-up allowance and was killed; charged max_runtime_seconds;
- failed otherwise (a non-finite loss, a crash): the error's last line, charged the runtime reached, clipped.

The trainer's clock (checkpointed, so it adds up over restarts) counts training and evaluation, not start-up or the
work lost to a restart: the handout's "running" also includes start-up and preemption. A server that stops
terminates its experiments, which stay running in the state file; the next server resumes each from its last
checkpoint (``train --resume``). A server killed outright takes them along (Linux's parent-death signal), so two
processes never write one experiment.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import impl
from impl.programs.files import atomic_write_text
from impl.programs.run_log import MetricsLog
from impl.programs.training_api_config import Limits, TrainingConfig, train_settings
from impl.programs.training_api_store import Store

PR_SET_PDEATHSIG = 1
KIT_ROOT = str(Path(impl.__file__).resolve().parents[1])  # the experiments run the server's own copy of the kit


@dataclass(frozen=True)
class RunnerSettings:
    devices: tuple[str, ...]
    experiments_dir: Path
    train_data: Path
    valid_data: Path
    limits: Limits
    startup_grace_seconds: float = 300.0  # start-up (imports, data) allowed beyond max_runtime_seconds
    poll_seconds: float = 0.25


@dataclass
class Attempt:
    experiment_id: int
    max_runtime_seconds: float
    chunk: int  # steps per chunk: a validation loss at each multiple
    out_dir: Path
    process: subprocess.Popen
    deadline: float  # time.monotonic() past which the process is killed as timed out
    losses: list[float] = field(default_factory=list)


def die_with_parent() -> None:
    """In the child before exec: SIGKILL when the thread that started it ends (the server killed outright)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Runner:
    def __init__(self, store: Store, settings: RunnerSettings):
        self.store, self.settings = store, settings
        self.slots: dict[int, Attempt] = {}  # device index -> its experiment
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="training-api-runner", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop launching; terminate the running experiments (they resume on the next start)."""
        self.stopping.set()
        self.thread.join(timeout)

    def loop(self) -> None:
        # The processes are started and ended in this thread: their parent-death signal follows this thread's life.
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception:  # a bug here must not stop every later experiment: logged, and the loop goes on
                traceback.print_exc()
            self.stopping.wait(self.settings.poll_seconds)
        for attempt in self.slots.values():
            attempt.process.terminate()
        for attempt in self.slots.values():
            try:
                attempt.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                attempt.process.kill()
                attempt.process.wait()

    def tick(self) -> None:
        for slot, attempt in list(self.slots.items()):
            if self.check(attempt):
                del self.slots[slot]
        for slot, device in enumerate(self.settings.devices):
            if slot in self.slots:
                continue
            row = self.store.claim({a.experiment_id for a in self.slots.values()})
            if row is None:
                return
            self.slots[slot] = self.launch(row, device)

    def launch(self, row, device: str) -> Attempt:
        s = self.settings
        config = TrainingConfig.model_validate_json(row["training_config"])
        out_dir = s.experiments_dir / str(row["id"])
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.json").unlink(missing_ok=True)  # written at a run's end: never a previous attempt's
        if (out_dir / "checkpoint.pt").exists():  # a server stopped during it: go on from the last chunk
            args = ["--out-dir", str(out_dir), "--resume"]
        else:
            settings = train_settings(config, s.limits, str(s.train_data), str(s.valid_data), str(out_dir))
            toml = "".join(f"{name} = {json.dumps(value)}\n" for name, value in settings.items())  # JSON spells TOML's
            atomic_write_text(out_dir / "config.toml", toml)  # strings, numbers and booleans alike
            args = ["--config", str(out_dir / "config.toml")]
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, (KIT_ROOT, os.environ.get("PYTHONPATH"))))}
        with open(out_dir / "train.log", "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "impl.programs.train", *args, "--device", device],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                       preexec_fn=die_with_parent)
        chunk = max(1, train_settings(config, s.limits, "", "", "")["eval_interval"])
        return Attempt(row["id"], row["max_runtime_seconds"], chunk, out_dir, process,
                       time.monotonic() + row["max_runtime_seconds"] + s.startup_grace_seconds,
                       json.loads(row["val_losses"]))

    def check(self, attempt: Attempt) -> bool:
        """Record new chunk losses; finish the experiment if its process ended (or ran out of time): True then."""
        rows = read_metrics(attempt.out_dir)
        losses = [row["val_loss"] for row in rows if "val_loss" in row and row["step"] % attempt.chunk == 0]
        if losses != attempt.losses:
            self.store.record_losses(attempt.experiment_id, losses)
            attempt.losses = losses
        code = attempt.process.poll()
        if code is None:
            if time.monotonic() < attempt.deadline:
                return False
            attempt.process.kill()
            attempt.process.wait()
            self.store.finish(attempt.experiment_id, "failed", losses, attempt.max_runtime_seconds, "timeout")
            return True
        summary = read_summary(attempt.out_dir) if code == 0 else None
        if summary is not None and not summary["stopped_early"]:
            self.store.finish(attempt.experiment_id, "completed", losses, summary["wall_s"])
        elif summary is not None:
            self.store.finish(attempt.experiment_id, "failed", losses, summary["wall_s"], "timeout")
        else:
            runtime = rows[-1]["wall_s"] if rows else 0.0
            self.store.finish(attempt.experiment_id, "failed", losses, runtime,
                              last_line(attempt.out_dir / "train.log") or f"the train program exited with {code}")
        return True


def read_metrics(out_dir: Path) -> list[dict]:
    path = out_dir / "metrics.jsonl"
    return MetricsLog.read(path) if path.exists() else []  # a row being appended is skipped until complete


def read_summary(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def last_line(log: Path) -> str:
    """The last line of the train program's output (its error), past progress-bar redraws."""
    with open(log, "rb") as file:
        file.seek(max(0, log.stat().st_size - 8192))
        text = file.read().decode("utf-8", "replace")
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""
