"""Run the ``train`` program several times in one process: under torchrun, many runs for one launch.

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m tests.programs.train_many RUNS.json

RUNS.json is a list of entries run in order on every rank. An entry is the argument list of one run of
``impl.programs.train.main``, which must succeed. The runs share one process group, made here (the program
uses a group it finds, and makes its own otherwise): a launch per run would cost the seconds that starting
interpreters, importing torch and the rendezvous take on a busy 2-core machine, and a default group made
again after ``destroy_process_group`` in the same processes meets stale addresses in torchrun's store. The
entry ``{"fail_on_rank": r, "at_step": s}`` makes rank
r raise at step s of the runs after it (the test that an error on one rank brings the job down).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

from impl.programs.launch import exit_rank
from impl.programs.train import main
from impl.programs.trainer import Trainer


class InjectedFailure(RuntimeError):
    pass


def fail_on(rank: int, at_step: int) -> None:
    if int(os.environ.get("RANK", 0)) != rank:
        return
    train_step = Trainer.train_step

    def failing(self):
        if self.step + 1 == at_step:
            raise InjectedFailure(f"injected failure on rank {rank} at step {at_step}")
        return train_step(self)

    Trainer.train_step = failing


def run(runs: list) -> None:
    for entry in runs:
        if isinstance(entry, dict):
            fail_on(entry["fail_on_rank"], entry["at_step"])
            continue
        code = main(entry)
        if code != 0:
            raise SystemExit(f"train_many: run {entry} exited with {code}")


if __name__ == "__main__":
    dist.init_process_group("gloo", timeout=timedelta(minutes=2))
    try:
        run(json.loads(Path(sys.argv[1]).read_text()))
    except BaseException:  # noqa: BLE001  (the job fails with this rank's traceback, as an uncaught error would)
        traceback.print_exc()
        exit_rank(1)
    dist.destroy_process_group()
    exit_rank(0)
