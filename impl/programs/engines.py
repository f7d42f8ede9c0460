"""Where a data program's tasks run: this process, local processes, or a Ray cluster (DESIGN.md: an existing
engine, never a home-made scheduler).

    engine = make_engine("local", workers=8)           # concurrent.futures.ProcessPoolExecutor
    engine = make_engine("ray", workers=8)             # a Ray instance started here with 8 CPUs
    engine = make_engine("ray", address="auto")        # a running cluster (`ray start --head` ...), or ray://host:10001
    engine.map(fn, job, tasks, on_result)              # fn(job, task) for each task, anywhere; on_result as each ends

A task is a module-level function and picklable arguments; it writes its outputs itself (on a filesystem every
node sees) and returns a small dict. Every wait has a timeout: no task finishing within ``task_timeout`` seconds
ends the run with an error instead of a hang (the finished tasks are kept: a rerun resumes). A task's UserError
or OSError reaches the driver as itself, so that it ends as one line.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import signal
import socket
import sys
from collections.abc import Callable, Iterable

from impl.programs.cli import UserError

OnResult = Callable[[object, dict], None]


class EngineError(UserError):
    """The engine cannot start, a worker died, or no task finished in time."""


def die_with_parent() -> None:
    """Linux: a worker killed with its driver (SIGKILL included) instead of lingering as an orphan."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def timed_out(timeout: float) -> EngineError:
    return EngineError(f"no task finished in {timeout:g} s (--task-timeout): a worker hangs or the tasks are too "
                       f"large; the finished tasks are kept, rerun the same command to resume")


class InProcess:
    """One worker: the tasks run in this process, one after the other (a debugger and a traceback see them)."""
    description = "1 worker (this process)"

    def map(self, fn, job, tasks: Iterable, on_result: OnResult) -> None:
        for task in tasks:
            on_result(task, fn(job, task))

    def close(self) -> None:
        pass


class LocalProcesses:
    """``workers`` processes of this machine (concurrent.futures)."""

    def __init__(self, workers: int, task_timeout: float):
        from impl.tokenizer.training import worker_context

        self.description = f"{workers} local processes"
        self.timeout = task_timeout
        self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=worker_context(),
                                                           initializer=die_with_parent)

    def map(self, fn, job, tasks: Iterable, on_result: OnResult) -> None:
        futures = {self.pool.submit(fn, job, task): task for task in tasks}
        pending = set(futures)
        try:
            while pending:
                done, pending = concurrent.futures.wait(pending, self.timeout, concurrent.futures.FIRST_COMPLETED)
                if not done:
                    raise timed_out(self.timeout)
                for future in sorted(done, key=lambda f: str(futures[f])):
                    try:
                        result = future.result()
                    except concurrent.futures.process.BrokenProcessPool:
                        raise EngineError("a worker process died (out of memory? killed?); the finished tasks are "
                                          "kept, rerun the same command to resume") from None
                    on_result(futures[future], result)
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        """Stop at once: the pool's own shutdown would wait for running (maybe hung) tasks."""
        for process in list((self.pool._processes or {}).values()):  # no public kill before Python 3.14
            process.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class RayCluster:
    """Tasks as Ray tasks: on a Ray instance started here (``address`` None: ``workers`` CPUs), or on the running
    cluster at ``address``. Inputs and outputs must lie on a filesystem that every node sees."""

    def __init__(self, address: str | None, workers: int, task_timeout: float):
        try:
            import ray
        except ImportError:
            raise EngineError("--engine ray needs Ray: pip install 'cs336-spec-kit[data-cluster]' (or "
                              "'ray[default]>=2.40')") from None
        self.ray, self.timeout = ray, task_timeout
        if address:
            check_reachable(address)
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
        try:
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=workers, object_store_memory=200 * 2**20, **options)  # results are small dicts
        except Exception as error:  # ConnectionError, ValueError, RuntimeError, timeouts: ray's own message says which
            raise EngineError(f"--engine ray could not {'connect to ' + address if address else 'start Ray'}: "
                              f"{type(error).__name__}: {' '.join(str(error).split())[:300]}") from None
        cpus = int(ray.cluster_resources().get("CPU", 0))
        self.description = f"Ray ({'cluster ' + address if address else 'started here'}, {cpus} CPUs)"
        self.remote = ray.remote(num_cpus=1, max_retries=2)(call)

    def map(self, fn, job, tasks: Iterable, on_result: OnResult) -> None:
        ray = self.ray
        job_ref = ray.put(job)
        refs = {self.remote.remote(fn, job_ref, task): task for task in tasks}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=self.timeout)
                if not done:
                    raise timed_out(self.timeout)
                try:
                    result = ray.get(done[0], timeout=self.timeout)
                except ray.exceptions.RayTaskError as error:
                    cause = getattr(error, "cause", None)
                    raise cause if isinstance(cause, (UserError, OSError)) else error
                except ray.exceptions.RayError as error:  # a worker or node died past the retries, a lost object
                    raise EngineError(f"Ray: {type(error).__name__}: {' '.join(str(error).split())[:300]}; the "
                                      f"finished tasks are kept, rerun the same command to resume") from None
                on_result(refs[done[0]], result)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def close(self) -> None:
        self.ray.shutdown()


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """A host:port (or ray://host:port) that nothing answers at is an error now: ray.init would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto": Ray finds the cluster of this machine itself, or says there is none
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise EngineError(f"--address {address}: nothing answers there ({error.strerror or error}); start the cluster "
                          f"(ray start --head), or leave out --address to start Ray here") from None


def call(fn, job, task) -> dict:
    return fn(job, task)


def make_engine(engine: str, workers: int, task_timeout: float, address: str | None = None):
    if engine == "ray":
        return RayCluster(address, workers, task_timeout)
    return InProcess() if workers == 1 else LocalProcesses(workers, task_timeout)
