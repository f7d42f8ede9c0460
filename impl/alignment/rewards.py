"""Rewards and answer parsers: the r1_zero reward on MATH (A5 §3.2, the course's drgrpo_grader.r1_zero_reward_fn,
answers compared through math-verify), and the supplement's GSM8K and MMLU parsers (§2.1, §2.2)."""

from __future__ import annotations

import logging
import re
from typing import Any

FORMAT_OPEN, ANSWER_CLOSE = "</think> <answer>", "</answer>"
UNFORMATTED = {"format_reward": 0.0, "answer_reward": 0.0, "reward": 0.0}
WRONG = {"format_reward": 1.0, "answer_reward": 0.0, "reward": 0.0}
RIGHT = {"format_reward": 1.0, "answer_reward": 1.0, "reward": 1.0}


def boxed_content(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (braces balanced), or None."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    return None


# math-verify's own timeouts are off (None): they are signal.alarm, which would cancel the caller's SIGALRM timer
# (the kit's per-test timeout, a trainer's) and which refuses to run outside the main thread (a reward computed in a
# worker thread). Its logger's warning that they are off says only that: silenced.


def as_math(text: str):
    from math_verify import parse  # imported when first needed: sympy and the LaTeX parser take a second

    logging.getLogger("math_verify").setLevel(logging.ERROR)

    text = text.strip()
    return parse(text if "$" in text else f"${text}$", parsing_timeout=None)


def same_answer(answer: str, ground_truth: str) -> bool:
    from math_verify import verify

    if answer.strip() == ground_truth.strip():
        return True
    gold, given = as_math(ground_truth), as_math(answer)
    return bool(gold and given and verify(gold, given, timeout_seconds=None))


def r1_zero_reward_fn(response: str, ground_truth: str, fast: bool = True) -> dict[str, float]:
    if FORMAT_OPEN not in response or ANSWER_CLOSE not in response:  # the course's format check
        return dict(UNFORMATTED)
    answer = response.split("<answer>")[-1].replace(ANSWER_CLOSE, "")
    if "\\boxed" in answer:
        answer = boxed_content(answer)
        if answer is None:
            return dict(WRONG)
    return dict(RIGHT if same_answer(answer, str(ground_truth)) else WRONG)


# An optional minus, digits with optional thousands groups, optional decimals (a full stop with no digit after it
# ends the sentence, not the number).
NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?")


def parse_gsm8k_response(model_output: str) -> str | None:
    numbers = NUMBER.findall(model_output)
    return numbers[-1].replace(",", "") if numbers else None


MMLU_ANSWER = re.compile(r"The correct answer is\s*\(?([ABCD])\b")


def parse_mmlu_response(mmlu_example: dict[str, Any], model_output: str) -> str | None:
    match = MMLU_ANSWER.search(model_output)
    return match.group(1) if match else None
