"""Rewards computed in a worker process, each response within a time limit.

math-verify's own timeouts are off in the reference (impl/alignment/rewards.py says why), and sympy can spend
minutes on a pathological answer: scoring in the training process could hang the run. Here a batch is scored in a
worker; if it runs past its time, the worker is killed and the batch rescored one response at a time, so that only
the response that takes too long gets reward 0 (counted in ``timeouts``). A reward function that raises is a
``RewardError`` naming the response; nothing the run has saved is touched.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from impl.programs.cli import UserError

RewardFunction = Callable[[str, str], dict[str, float]]
STARTUP_TIMEOUT_S = 120
TIMED_OUT = {"format_reward": 0.0, "answer_reward": 0.0, "reward": 0.0}


class RewardError(UserError):
    """The reward function raised."""


def score_batch(reward_fn: RewardFunction, responses: Sequence[str],
                ground_truths: Sequence[str]) -> list[dict[str, float]] | str:
    """In the worker: each response's reward dict, or the message of the first that raised."""
    scores = []
    for i, (response, truth) in enumerate(zip(responses, ground_truths)):
        try:
            scores.append({key: float(value) for key, value in reward_fn(response, truth).items()})
        except Exception as error:  # the user's reward function: any exception is reported, named
            return f"the reward function raised on response {i} ({response[:80]!r}, ground truth {truth!r}): " \
                   f"{type(error).__name__}: {error}"
    return scores


class RewardScorer:
    """``score(responses, ground_truths)`` -> (reward dicts, timeouts) by ``reward_fn``, a module-level function
    (the worker receives it by name)."""

    def __init__(self, reward_fn: RewardFunction, timeout_s: float):
        self.reward_fn, self.timeout_s = reward_fn, timeout_s
        self.pool: ProcessPoolExecutor | None = None

    def start(self) -> ProcessPoolExecutor:
        """The worker, started and warmed up: one trivial response scored, so that importing the reward's modules
        (sympy for math-verify: seconds) never counts against a response's time."""
        if self.pool is None:
            # forkserver: a clean child, not a fork of a process holding torch threads and a model.
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"))
            try:
                self.pool.submit(score_batch, self.reward_fn, ["0"], ["0"]).result(timeout=STARTUP_TIMEOUT_S)
            except FutureTimeout:
                self.kill()
                raise RewardError(f"the reward worker did not start within {STARTUP_TIMEOUT_S} s") from None
        return self.pool

    def kill(self) -> None:
        if self.pool is not None:
            for process in list(self.pool._processes.values()):  # a hung worker does not end on shutdown alone
                process.kill()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def run(self, responses: Sequence[str], ground_truths: Sequence[str], timeout_s: float):
        future = self.start().submit(score_batch, self.reward_fn, list(responses), list(ground_truths))
        try:
            result = future.result(timeout=timeout_s)
        except FutureTimeout:
            self.kill()
            return None
        if isinstance(result, str):
            raise RewardError(result)
        return result

    def score(self, responses: Sequence[str], ground_truths: Sequence[str]) -> tuple[list[dict[str, float]], int]:
        scores = self.run(responses, ground_truths, self.timeout_s * len(responses))
        if scores is not None:
            return scores, 0
        scores, timeouts = [], 0
        for response, truth in zip(responses, ground_truths):
            one = self.run([response], [truth], self.timeout_s)
            if one is None:
                timeouts += 1
                scores.append(dict(TIMED_OUT))
            else:
                scores.append(one[0])
        return scores, timeouts

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
