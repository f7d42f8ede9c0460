"""Run a function on several ranks, each a real process in one ``torch.distributed`` process group.

DESIGN.md: distributed tests spawn real processes (gloo on CPU; NCCL with one GPU per rank), meet
through a FileStore in a fresh temp dir (never a fixed port), send tracebacks back, and time out
instead of hanging. Shared by the conformance suite and by users::

    from tests.harness.multiprocess import implementation, run_ranks

    def train(rank, world_size, label, steps):          # module level: the children import it
        impl = implementation(label)                     # the implementation under test, in this process
        ...
        return {name: p.detach() for name, p in model.named_parameters()}   # anything picklable

    states = run_ranks(train, 2, impl.label, steps=3)   # [rank 0's return value, rank 1's]

A rank that raises, exits or is killed fails the run with ``RankFailed``: the message names the rank,
its exit code and its traceback (or, for a rank that died without one, the tail of its output); the
other ranks are stopped after a short grace. ``timeout_s`` counts from the moment every rank has joined
the process group, not from the launch: starting Python and torch and meeting the peers may take as long
as STARTUP_S on a loaded machine without eating into it. Past it every rank is stopped and ``RankTimeout``
names the ranks that had not finished, with their Python stacks at that moment.

Inside a rank, ``collective_log()`` records the collectives called through ``torch.distributed``
(and ``mark(text)`` the test's own events between them), which shows *when* communication starts
without timing anything: the recorder is installed in each child before the function (and so the
implementation) is imported.
"""

from __future__ import annotations

import contextlib
import datetime
import faulthandler
import functools
import inspect
import multiprocessing
import multiprocessing.connection
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spec import ComponentMissing
from spec.loading import Bundle, load_implementation

# The ranks fork from a server process that has imported torch once (~2-8 s per rank saved on each launch on a
# 2-core machine: the import, and torch._dynamo's, which every optimizer pulls in). Like spawn, and unlike fork, the
# ranks inherit nothing of the calling process (no CUDA context, no threads, no test state): only what the server
# imported. Where forkserver does not exist (Windows), spawn.
START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
PRELOAD = ["torch", "torch.distributed", "torch._dynamo", __name__]
# After the first rank fails, how long the others get to finish or report their own error (a rank blocked
# in a collective with the dead peer usually raises within milliseconds), and how long a terminated rank
# gets before it is killed.
GRACE_S = 3.0
KILL_AFTER_S = 2.0
# The most a rank may take to start and join the process group (also the rendezvous's own timeout): generous,
# since it depends only on how busy the machine is; timeout_s starts once every rank has joined.
STARTUP_S = 300.0
LOG_TAIL = 3000  # characters of a rank's output quoted when it died without a traceback


class RankFailed(AssertionError):
    """A rank raised, exited or was killed; the message names it and carries its traceback.

    (A rank that raised ComponentMissing, the implementation lacking what the test needs, is raised as that.)"""


class RankTimeout(RankFailed):
    """The ranks did not all finish within the timeout; the message names those still running."""


def run_ranks(fn: Callable[..., Any], world_size: int, *args: Any, backend: str = "gloo", timeout_s: float = 120.0,
              **kwargs: Any) -> list[Any]:
    """Call ``fn(rank, world_size, *args, **kwargs)`` in ``world_size`` new processes; their results in rank order.

    Each process initializes the default process group (``backend``; a FileStore in a fresh temp dir; collective
    timeout a little under ``timeout_s``, so that a collective waiting on a dead or stuck peer raises instead of
    hanging), calls ``fn``, destroys the group and sends back the return value (which must pickle). With
    ``backend="nccl"`` rank r uses ``cuda:r``. ``fn`` must be a module-level function: the ranks are fresh
    processes (forked from a server that has only imported torch, or spawned), which import it by name and see
    this process's environment variables but none of its other state. On CPU each rank gets 1 / world_size of
    torch's default thread count (at least one), so that the ranks do not oversubscribe the cores.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    try:
        call = pickle.dumps((fn, args, kwargs))
    except Exception as error:
        raise TypeError(f"run_ranks: {fn!r} and its arguments must pickle (a module-level function, picklable "
                        f"arguments): {type(error).__name__}: {error}") from error
    workdir = Path(tempfile.mkdtemp(prefix="cs336_ranks_"))
    context = multiprocessing.get_context(START_METHOD)
    if START_METHOD == "forkserver":
        context.set_forkserver_preload(PRELOAD)  # takes effect when the server starts, at the first launch
    processes: list[multiprocessing.process.BaseProcess] = []
    try:
        (workdir / "call.pkl").write_bytes(call)
        collective_timeout = max(1.0, min(0.8 * timeout_s, timeout_s - 5.0))
        for rank in range(world_size):
            process = context.Process(target=_child, name=f"rank {rank}",
                                      args=(rank, world_size, backend, str(workdir), collective_timeout,
                                            dict(os.environ)))
            process.start()
            processes.append(process)
        _wait(processes, workdir, timeout_s)
        results = []
        for rank in range(world_size):
            results.append(pickle.loads((workdir / f"rank{rank}.result").read_bytes()))
        _echo_logs(workdir, world_size)
        return results
    finally:
        _stop(processes)
        shutil.rmtree(workdir, ignore_errors=True)


_launches: dict[tuple, list[Any] | Exception] = {}


def run_ranks_once(fn: Callable[..., Any], world_size: int, *args: Any, backend: str = "gloo",
                   timeout_s: float = 120.0, **kwargs: Any) -> list[Any]:
    """``run_ranks``, remembered for this process: several tests reading one scenario launch it once.

    The arguments must be hashable. A failure is remembered too and raised again to every caller (a RankFailed
    as a new exception of its type with the same message, so that tracebacks do not pile up; a ComponentMissing
    as itself).
    """
    key = (fn.__module__, fn.__qualname__, world_size, args, backend, timeout_s, tuple(sorted(kwargs.items())))
    if key not in _launches:
        try:
            _launches[key] = run_ranks(fn, world_size, *args, backend=backend, timeout_s=timeout_s, **kwargs)
        except (RankFailed, ComponentMissing) as error:
            _launches[key] = error
    result = _launches[key]
    if isinstance(result, RankFailed):
        raise type(result)(f"the ranks failed running {fn.__module__}.{fn.__qualname__}:\n{result}")
    if isinstance(result, ComponentMissing):
        raise result
    return result


@functools.cache
def implementation(label: str) -> Bundle:
    """The implementation under test, loaded from its ``--impl`` label (``impl.label``) once per process.

    Conformance tests hand the label of their ``impl`` fixture to the ranks; each rank reloads it here, so that
    a mutant (``tests.kit.mutants:<name>``) or a course adapters file (``adapters:<path>``) runs in the children
    exactly as in the parent. A ComponentMissing raised in a rank reaches the caller of run_ranks as itself, so
    that the report says *missing*, not failed.
    """
    return load_implementation(label)


# ---------------------------------------------------------------------------------------------
# Parent side


def _wait(processes: list, workdir: Path, timeout_s: float) -> None:
    """Return when every rank exited 0; raise RankFailed / RankTimeout otherwise."""
    running = {p.sentinel: rank for rank, p in enumerate(processes)}
    failed: list[int] = []  # in the order their failure was seen
    launched, all_joined = time.monotonic(), None
    grace_ends = float("inf")  # once a rank failed: when the others are stopped
    while running:
        now = time.monotonic()
        if all_joined is None and all((workdir / f"rank{r}.ready").exists() for r in range(len(processes))):
            all_joined = now
        deadline = min(grace_ends, launched + STARTUP_S if all_joined is None else all_joined + timeout_s)
        if now >= deadline and not failed:
            _dump_stacks([processes[r] for r in running.values()])
            unfinished = sorted(running.values())
            finished = [r for r in range(len(processes)) if r not in unfinished]
            what = (f"did not join the process group within {STARTUP_S:g} s of the launch" if all_joined is None
                    else f"did not finish within {timeout_s:g} s")
            raise RankTimeout(f"rank{'s' * (len(unfinished) > 1)} {_names(unfinished)} {what} (finished: "
                              f"{_names(finished) or 'none'}); where they were:\n"
                              + "\n".join(_log_tail(workdir, r) for r in unfinished))
        poll = deadline - now if all_joined is not None else min(deadline - now, 0.1)  # joining: watch the files
        for sentinel in multiprocessing.connection.wait(list(running), timeout=max(0.0, poll)):
            rank = running.pop(sentinel)
            processes[rank].join()  # the sentinel fires as the process exits; join reaps it (exitcode set)
            if processes[rank].exitcode != 0:
                failed.append(rank)
                grace_ends = min(grace_ends, time.monotonic() + GRACE_S)  # the others: a short grace, then stopped
        if failed and time.monotonic() >= grace_ends:
            break
    if failed:
        stopped = sorted(running.values())
        _stop([processes[r] for r in stopped])
        missing = workdir / f"rank{failed[0]}.missing"
        if missing.exists():
            component, detail = pickle.loads(missing.read_bytes())
            raise ComponentMissing(component, detail)
        raise RankFailed(_failure_message(processes, workdir, failed, stopped))


def _failure_message(processes: list, workdir: Path, failed: list[int], stopped: list[int]) -> str:
    first, others = failed[0], failed[1:]
    lines = [f"rank {first} failed ({_exit(processes[first].exitcode)}) in a world of {len(processes)}:",
             _error_of(workdir, first)]
    for rank in others:  # usually a consequence: a collective whose peer died
        last = _error_of(workdir, rank).strip().splitlines()
        lines.append(f"rank {rank} also failed ({_exit(processes[rank].exitcode)}): {last[-1] if last else ''}")
    if stopped:
        lines.append(f"rank{'s' * (len(stopped) > 1)} {_names(stopped)} stopped after rank {first} failed")
    return "\n".join(lines)


def _error_of(workdir: Path, rank: int) -> str:
    error = workdir / f"rank{rank}.error"
    if error.exists():
        return error.read_text()
    if not (workdir / f"rank{rank}.log").exists():
        return ("(the process died while starting, before it could run the function; its error went to this "
                "process's stderr. A script that calls run_ranks needs the `if __name__ == \"__main__\":` guard)")
    return f"(no Python traceback: the process died; its last output)\n{_log_tail(workdir, rank)}"


def _log_tail(workdir: Path, rank: int) -> str:
    log = workdir / f"rank{rank}.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return f"--- rank {rank} output (last {LOG_TAIL} characters) ---\n{text[-LOG_TAIL:]}"


def _echo_logs(workdir: Path, world_size: int) -> None:
    """Forward what the ranks printed to this process's stderr (pytest shows it with a failure)."""
    for rank in range(world_size):
        log = workdir / f"rank{rank}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        if text.strip():
            sys.stderr.write("".join(f"[rank {rank}] {line}\n" for line in text.splitlines()))


def _dump_stacks(processes: list) -> None:
    """Ask stuck ranks for their Python stacks (faulthandler, registered on SIGUSR1 in each child)."""
    if not hasattr(signal, "SIGUSR1"):
        return
    for process in processes:
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.kill(process.pid, signal.SIGUSR1)
    time.sleep(0.5)


def _stop(processes: list) -> None:
    """Terminate what still runs; kill what ignores it. Never waits more than KILL_AFTER_S."""
    alive = [p for p in processes if p.exitcode is None and p.pid is not None]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + KILL_AFTER_S
    for process in alive:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            process.kill()
            process.join()


def _exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def _names(ranks: list[int]) -> str:
    return ", ".join(map(str, ranks))


# ---------------------------------------------------------------------------------------------
# Child side


def _child(rank: int, world_size: int, backend: str, workdir: str, collective_timeout: float,
           environment: dict[str, str]) -> None:
    work = Path(workdir)
    os.environ.clear()  # the caller's environment now, not the fork server's from its start
    os.environ.update(environment)
    # Everything the rank prints goes to its log: quoted when it dies without a traceback, echoed otherwise.
    log = os.open(work / f"rank{rank}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=False)
    code = 0
    try:
        import torch
        import torch.distributed as dist
        from torch.distributed.distributed_c10d import _set_pg_timeout

        _install_recorder()  # before fn's module, hence the implementation, is imported
        fn, args, kwargs = pickle.loads((work / "call.pkl").read_bytes())
        if backend == "nccl":
            torch.cuda.set_device(rank)
        else:
            torch.set_num_threads(max(1, torch.get_num_threads() // world_size))  # the ranks share the cores
        store = dist.FileStore(str(work / "store"), world_size)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=STARTUP_S))
        # Every rank connected before any may finish and leave: on a loaded machine a fast rank 0 used to exit while
        # rank 1 was still in gloo's connectFullMesh ("Connection closed by peer"). Still under the start-up timeout.
        dist.barrier()
        # The rendezvous above may take long on a busy machine; the collectives get the test's own timeout.
        _set_pg_timeout(datetime.timedelta(seconds=collective_timeout))
        (work / f"rank{rank}.ready").touch()  # the parent's timeout_s starts when every rank is here
        result = fn(rank, world_size, *args, **kwargs)
        dist.destroy_process_group()
        payload = pickle.dumps(result)
        (work / f"rank{rank}.result.tmp").write_bytes(payload)
        os.replace(work / f"rank{rank}.result.tmp", work / f"rank{rank}.result")  # whole or absent
    except BaseException as error:  # noqa: BLE001  (SystemExit and KeyboardInterrupt included)
        (work / f"rank{rank}.error").write_text(traceback.format_exc())
        if isinstance(error, ComponentMissing):  # the parent reports it missing, not failed
            detail = str(error).removeprefix(f"{error.component} is missing: ")
            (work / f"rank{rank}.missing").write_bytes(pickle.dumps((error.component, detail)))
        code = error.code if isinstance(error, SystemExit) and isinstance(error.code, int) and error.code else 1
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: no interpreter teardown, which can hang on a process group whose peer died.
    os._exit(code)


# ---------------------------------------------------------------------------------------------
# Recording collectives (inside a rank)

COLLECTIVES = ("all_reduce", "all_reduce_coalesced", "broadcast", "reduce", "all_gather", "all_gather_into_tensor",
               "reduce_scatter", "reduce_scatter_tensor", "all_to_all", "all_to_all_single", "gather", "scatter")


@dataclass(frozen=True)
class Event:
    """A collective called through torch.distributed, or a ``mark`` the test made."""

    name: str  # the collective ("all_reduce", ...) or the mark's text
    collective: bool
    async_op: bool = False
    numel: int = 0  # elements of the first argument (a tensor, or the sum over a list of tensors)


_log: list[Event] | None = None  # recording when not None


@contextlib.contextmanager
def collective_log() -> Iterator[list[Event]]:
    """Record, in order, the collectives this rank calls and the marks it makes, until the block ends."""
    global _log
    previous, _log = _log, []
    try:
        yield _log
    finally:
        _log = previous


def mark(text: str) -> None:
    """Put one of the test's own events (``"backward returned"``) into the log being recorded."""
    if _log is not None:
        _log.append(Event(text, collective=False))


def _install_recorder() -> None:
    import torch
    import torch.distributed as dist
    import torch.distributed.distributed_c10d as c10d

    for name in COLLECTIVES:
        original = getattr(c10d, name, None)
        if original is None or getattr(original, "_kit_recorder", False):
            continue
        signature = inspect.signature(original)

        @functools.wraps(original)
        def recorded(*args, _original=original, _name=name, _signature=signature, **kwargs):
            if _log is not None:
                bound = _signature.bind(*args, **kwargs)
                first = next(iter(bound.arguments.values()), None)
                tensors = first if isinstance(first, (list, tuple)) else [first]
                numel = sum(t.numel() for t in tensors if isinstance(t, torch.Tensor))
                _log.append(Event(_name, True, bool(bound.arguments.get("async_op", False)), numel))
            return _original(*args, **kwargs)

        recorded._kit_recorder = True
        # Both names: torch.distributed.X for user code, c10d.X for torch's own helpers that call it.
        setattr(c10d, name, recorded)
        setattr(dist, name, recorded)
