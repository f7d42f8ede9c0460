"""The multi-process runner (tests/harness/multiprocess.py): results in rank order, failures that name the rank and
carry its traceback, timeouts instead of hangs, and the collective log the DDP tests read."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
import torch.distributed as dist

from spec import ComponentMissing
from tests.harness.multiprocess import (
    RankFailed,
    RankTimeout,
    collective_log,
    implementation,
    mark,
    run_ranks,
    run_ranks_once,
)


def summed(rank: int, world_size: int, offset: int, *, scale: int = 1) -> tuple[int, int]:
    value = torch.tensor([scale * (rank + offset)])
    dist.all_reduce(value)
    return rank, int(value)


def one_rank_raises(rank: int, world_size: int) -> None:
    if rank == 1:
        raise ValueError("rank one is broken")
    dist.all_reduce(torch.ones(1))  # blocked on the dead peer: must fail, not hang


def one_rank_exits(rank: int, world_size: int) -> None:
    if rank == 0:
        print("last words", flush=True)
        os._exit(3)
    dist.all_reduce(torch.ones(1))


def one_rank_is_killed(rank: int, world_size: int) -> None:
    if rank == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    dist.barrier()


def one_rank_hangs(rank: int, world_size: int) -> int:
    if rank == 1:
        time.sleep(600)
    return rank


def missing_component(rank: int, world_size: int) -> None:
    raise ComponentMissing("DDPBucketed", "adapters.get_ddp_bucketed raises NotImplementedError")


def logged(rank: int, world_size: int) -> list:
    dist.all_reduce(torch.ones(3))  # not recorded: outside the block
    with collective_log() as log:
        work = dist.all_reduce(torch.ones(4), async_op=True)
        mark("between")
        dist.broadcast(torch.ones(2, 5), src=0)
        work.wait()
    mark("outside")
    return log


def environment_and_labels(rank: int, world_size: int) -> tuple[str | None, bool, str]:
    mutant = implementation("tests.kit.mutants:ddp_sum_without_average")
    return (os.environ.get("CS336_RUNNER_PROBE"), implementation("impl") is implementation("impl"),
            mutant.DDPIndividualParameters.__name__)


def test_results_come_back_in_rank_order():
    assert run_ranks(summed, 1, 5) == [(0, 5)]
    assert run_ranks(summed, 3, 10, scale=2) == [(r, 2 * (10 + 11 + 12)) for r in range(3)]


def test_a_rank_that_raises_fails_the_run_with_its_traceback():
    start = time.monotonic()
    with pytest.raises(RankFailed, match=r"(?s)rank 1 failed \(exit code 1\).*one_rank_raises.*ValueError: rank one "
                                         r"is broken"):
        run_ranks(one_rank_raises, 2, timeout_s=600)
    assert time.monotonic() - start < 300, "the run waited for the timeout instead of failing"


def test_a_rank_that_exits_is_named_with_its_exit_code_and_output():
    with pytest.raises(RankFailed, match=r"(?s)rank 0 failed \(exit code 3\).*no Python traceback.*last words"):
        run_ranks(one_rank_exits, 2, timeout_s=60)


def test_a_rank_killed_by_a_signal_is_named():
    with pytest.raises(RankFailed, match=r"rank 2 failed \(killed by signal SIGKILL\)"):
        run_ranks(one_rank_is_killed, 3, timeout_s=60)


def test_a_hang_times_out_naming_the_rank_and_where_it_was():
    """3 s from the moment both ranks joined the group (however long starting them took), not 600."""
    start = time.monotonic()
    with pytest.raises(RankTimeout, match=r"(?s)rank 1 did not finish within 3 s \(finished: 0\).*one_rank_hangs"):
        run_ranks(one_rank_hangs, 2, timeout_s=3)
    assert time.monotonic() - start < 300, "the run waited for the hang"


def test_component_missing_in_a_rank_is_reported_missing():
    with pytest.raises(ComponentMissing, match=r"^DDPBucketed is missing: adapters.get_ddp_bucketed raises "
                                               r"NotImplementedError$") as error:
        run_ranks(missing_component, 2)
    assert error.value.component == "DDPBucketed"


def test_unpicklable_function_is_refused_before_any_process_starts():
    with pytest.raises(TypeError, match="must pickle"):
        run_ranks(lambda rank, world_size: rank, 2)


def test_collective_log_records_calls_and_marks_in_order():
    for log in run_ranks(logged, 2):
        assert [(e.name, e.collective, e.async_op, e.numel) for e in log] == [
            ("all_reduce", True, True, 4), ("between", False, False, 0), ("broadcast", True, False, 10)]


def test_ranks_see_the_callers_environment_and_load_implementations_by_label(monkeypatch):
    """The environment is the caller's at the launch; a label (a mutant's here) loads in the rank, once per process."""
    monkeypatch.setenv("CS336_RUNNER_PROBE", "set after the fork server started")
    run_ranks(summed, 1, 0)  # the fork server is running by now
    expected = ("set after the fork server started", True, "DDPSumWithoutAverage")
    assert run_ranks(environment_and_labels, 2) == [expected] * 2


def pid(rank: int, world_size: int) -> int:
    return os.getpid()


def test_run_ranks_once_launches_once_and_remembers_failures():
    assert run_ranks_once(pid, 2) == run_ranks_once(pid, 2) != run_ranks(pid, 2)
    for _ in range(2):
        with pytest.raises(RankFailed, match="(?s)one_rank_raises.*rank 1 failed.*rank one is broken"):
            run_ranks_once(one_rank_raises, 2, timeout_s=60)
