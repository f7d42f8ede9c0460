"""Reward functions that misbehave, module-level so that the scoring worker can be handed them by name."""

from __future__ import annotations

import time


def raising_reward(response: str, ground_truth: str) -> dict[str, float]:
    raise ZeroDivisionError("the grader divided by zero")


def slow_on_nines(response: str, ground_truth: str) -> dict[str, float]:
    """Hangs (for a minute) on a response holding a 9; scores the others by exact match."""
    if "9" in response:
        time.sleep(60)
    right = float(response == ground_truth)
    return {"format_reward": 1.0, "answer_reward": right, "reward": right}


def longer_is_better(response: str, ground_truth: str) -> dict[str, float]:
    """Longer responses score higher (in [0, 1), as the programs' accuracy intervals need): rewards that differ within
    a group, so that every GRPO step moves the weights whatever the policy knows."""
    return {"format_reward": 1.0, "answer_reward": 0.0, "reward": len(response) / (len(response) + 10)}
