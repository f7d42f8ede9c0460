"""Conformance of the reward and the answer parsers (spec/alignment.py): the r1_zero reward on MATH (handout A5 §3.2),
the GSM8K and MMLU parsers (supplement §2.1–§2.2).

Oracles: the handout's own examples, the course's test cases for the parsers, and answers whose equivalence is
plain mathematics (1/2 = 0.5 = \\frac{1}{2}; 4x + 10 = 10 + 4x).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

RIGHT = {"format_reward": 1.0, "answer_reward": 1.0, "reward": 1.0}
WRONG = {"format_reward": 1.0, "answer_reward": 0.0, "reward": 0.0}
UNFORMATTED = {"format_reward": 0.0, "answer_reward": 0.0, "reward": 0.0}
THINK = "Natalia sold 48 clips in April and half as many in May. 48 + 24 = 72. </think> <answer>"

R1_ZERO_CASES = {  # name -> (response, ground truth, rewards)
    "right": (f"{THINK} 72 </answer>", "72", RIGHT),
    "handout-wrong-answer": (f"{THINK} She sold 15 clips. </answer>", "72", WRONG),
    "handout-half": (" 1 over 2 </think> <answer> 1/2 </answer>", "0.5", RIGHT),
    "latex-fraction": (" done </think> <answer> \\frac{1}{2} </answer>", "0.5", RIGHT),
    "handout-expression": (" done </think> <answer> 4x + 10 </answer>", "10 + 4x", RIGHT),
    "boxed": (" done </think> <answer> so the total is \\boxed{72} </answer>", "72", RIGHT),
    "no-answer-tags": ("Natalia sold 72 clips.", "72", UNFORMATTED),
    "no-closing-tag": (f"{THINK} 72", "72", UNFORMATTED),
    "no-think-tag": ("<answer> 72 </answer>", "72", UNFORMATTED),
    "wrong-number": (f"{THINK} 73 </answer>", "72", WRONG),
}


@pytest.mark.component("r1_zero_reward_fn")
@pytest.mark.parametrize("case", list(R1_ZERO_CASES))
def test_r1_zero_reward(impl, case):
    """Format: "</think> <answer>" then "</answer>"; answer: equal as mathematics to the ground truth; rewards
    (1, 1, 1), (1, 0, 0) or (0, 0, 0)."""
    response, ground_truth, expected = R1_ZERO_CASES[case]
    got = impl.r1_zero_reward_fn(response, ground_truth)
    assert {k: float(got[k]) for k in expected} == expected, f"{case}: {got}"


@pytest.mark.strict
@pytest.mark.component("r1_zero_reward_fn")
def test_r1_zero_reward_types(impl):
    """(strict) The three rewards are Python floats."""
    got = impl.r1_zero_reward_fn(R1_ZERO_CASES["right"][0], "72")
    assert all(type(got[k]) is float for k in RIGHT), got


@pytest.mark.strict
@pytest.mark.component("r1_zero_reward_fn")
def test_r1_zero_reward_in_a_worker_thread(impl):
    """(strict) Rollouts scored in a thread pool get the same rewards (no signal-based timeout, which only the main
    thread may set)."""
    cases = list(R1_ZERO_CASES.values())
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda c: impl.r1_zero_reward_fn(c[0], c[1]), cases))
    assert [{k: float(g[k]) for k in RIGHT} for g in got] == [c[2] for c in cases]


@pytest.mark.component("parse_gsm8k_response")
@pytest.mark.parametrize("output, expected", [
    ("Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in April and May.", "72"),
    ("Natalia sold twenty-four clips in May. Thus, Natalia sold seventy-two clips altogether in April and May.", None),
    ("3 apples and 4 pears make 7", "7"),
    ("", None),
], ids=["course-case", "no-number", "at-the-end", "empty"])
def test_parse_gsm8k_response(impl, output, expected):
    """The last number of the output, as a string; None when there is none (the course's cases)."""
    assert impl.parse_gsm8k_response(output) == expected


@pytest.mark.strict
@pytest.mark.component("parse_gsm8k_response")
@pytest.mark.parametrize("output, expected", [
    ("The total is 1,000 dollars.", "1000"),
    ("The temperature fell to -3 degrees.", "-3"),
    ("Each costs 2.5 dollars, so 12.75.", "12.75"),
], ids=["thousands", "negative", "decimals"])
def test_parse_gsm8k_response_number_forms(impl, output, expected):
    """(strict) Thousands commas dropped, a minus sign kept, decimals kept, a full stop not taken for a point."""
    assert impl.parse_gsm8k_response(output) == expected


MMLU_EXAMPLE = {"subject": "virology", "question": "How many human polyomaviruses are known at present?",
                "options": ["100", "1", "10", "unknown"], "answer": "A"}


@pytest.mark.component("parse_mmlu_response")
@pytest.mark.parametrize("output, expected", [
    ("The correct answer is B. There is only one human polyomavirus known at present, which is the BK virus.", "B"),
    ("The correct answer is 10000 polyomaviruses.", None),
    ("I am not sure.", None),
    ("Let me think. The correct answer is D", "D"),
    ("Option A is a common distractor. The correct answer is C.", "C"),
], ids=["course-case", "course-unknown", "no-sentence", "at-the-end", "other-letter-before"])
def test_parse_mmlu_response(impl, output, expected):
    """The letter of "The correct answer is X", X in A–D; None otherwise (the course's cases)."""
    assert impl.parse_mmlu_response(MMLU_EXAMPLE, output) == expected
