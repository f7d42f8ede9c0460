"""What the alignment programs train and evaluate on: problems with answers, the prompt templates, the SFT targets
and the reward.

- ``gsm8k``: GSM8K's train / test problems (fixtures/data/gsm8k, A5 supplement §2.2), the worked solutions for SFT.
- ``arithmetic``: "a+b=" for digits a, b, small enough for a tiny policy to learn on a CPU in seconds: the task of
  the kit's reward-rises test and the programs' small defaults.

Prompts: ``r1_zero`` (A5 §3.1; rewarded by ``r1_zero_reward_fn``: format and answer), ``question_only`` (the
supplement's GSM8K prompt; rewarded 1 when the last number of the output is the answer, ``parse_gsm8k_response``),
``bare`` (the question alone; r1_zero's reward: the tiny policies' prompt, the r1_zero one does not fit their
context) and ``alpaca`` (the supplement's Alpaca template, §3.2.1, up to the response; r1_zero's reward: the
prompt of the DPO loss, §5.3).
"""

from __future__ import annotations

import json
import lzma
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from fixtures import FIXTURES_DIR
from impl.programs.cli import UserError

TASKS = ("arithmetic", "gsm8k")
PROMPTS = ("bare", "r1_zero", "question_only", "alpaca")
SPLITS = ("train", "test")
PROMPT_FILES = {"r1_zero": "r1_zero.prompt", "question_only": "question_only.prompt", "alpaca": "alpaca_sft.prompt"}
CALCULATOR = re.compile(r"<<[^>]*>>")  # GSM8K's calculator annotations: "16-3-4=<<16-3-4=9>>9"


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str  # as written: "18", "1,000" stays as GSM8K writes it
    solution: str = ""  # the worked reasoning before the answer (GSM8K), for SFT targets
    calculations: int = 0  # GSM8K: the calculator steps of the worked solution, a measure of difficulty


def gsm8k_problems(split: str) -> list[Problem]:
    path = FIXTURES_DIR / "data" / "gsm8k" / f"{split}.jsonl.xz"
    problems = []
    with lzma.open(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            row = json.loads(line)
            solution, _, answer = row["answer"].rpartition("####")
            if not answer.strip():
                raise UserError(f"{path} line {number}: the answer has no '#### <number>' line")
            problems.append(Problem(row["question"], answer.strip(), CALCULATOR.sub("", solution).strip(),
                                    len(CALCULATOR.findall(solution))))
    return problems


def arithmetic_problems(split: str) -> list[Problem]:
    """All 100 sums of two digits; train and test are the same problems (the task is what is learned, not a
    held-out generalisation), in a seeded order of their own."""
    problems = [Problem(f"{a}+{b}=", str(a + b)) for a in range(10) for b in range(10)]
    random.Random(SPLITS.index(split)).shuffle(problems)
    return problems


def problems(task: str, split: str) -> list[Problem]:
    return {"gsm8k": gsm8k_problems, "arithmetic": arithmetic_problems}[task](split)


def prompt_template(prompt: str) -> str:
    if prompt == "bare":
        return "{question}"
    text = (FIXTURES_DIR / "data" / "prompts" / PROMPT_FILES[prompt]).read_text(encoding="utf-8")
    if prompt == "alpaca":  # the instruction is the question; the policy writes the response
        return text.split("{response}")[0].replace("{instruction}", "{question}")
    return text


def prompt_text(template: str, problem: Problem) -> str:
    return template.replace("{question}", problem.question)


def sft_target(problem: Problem, prompt: str) -> str:
    """The response SFT teaches: the reasoning (if any), then the answer in the prompt's format."""
    if prompt == "question_only":
        return f"{problem.solution}\nThe answer is {problem.answer}."
    reasoning = f"{problem.solution} " if problem.solution else ""
    return f"{reasoning}</think> <answer>{problem.answer}</answer>"


def last_number_reward(response: str, ground_truth: str) -> dict[str, float]:
    """The question_only prompt's reward: 1 when the response's last number is the answer (commas ignored)."""
    from impl.alignment import parse_gsm8k_response

    parsed = parse_gsm8k_response(response)
    right = parsed is not None and parsed.replace(",", "") == ground_truth.replace(",", "")
    return {"format_reward": float(parsed is not None), "answer_reward": float(right), "reward": float(right)}


def r1_zero_reward(response: str, ground_truth: str) -> dict[str, float]:
    from impl.alignment import r1_zero_reward_fn

    return r1_zero_reward_fn(response, ground_truth)


def reward_function(prompt: str) -> Callable[[str, str], dict[str, float]]:
    """The prompt's reward: a module-level function, so that the scoring worker can be handed it."""
    return last_number_reward if prompt == "question_only" else r1_zero_reward


def noisy_arithmetic_targets(examples: list[Problem], correct_fraction: float, seed: int) -> list[Problem]:
    """Each problem's answer kept with probability ``correct_fraction``, else a random sum 0..18: SFT on these
    gives a policy that knows the format and is sometimes right, which GRPO then improves."""
    rng = random.Random(seed)
    return [p if rng.random() < correct_fraction else Problem(p.question, str(rng.randrange(19)), p.solution)
            for p in examples]


def with_wrong_answer(problem: Problem, rng: random.Random) -> Problem:
    """The problem with another answer (the right one moved by 1 to 10 either way): the rejected response of a
    preference pair whose chosen response has the right one."""
    try:
        right = int(problem.answer.replace(",", ""))
    except ValueError:  # not an integer: another answer all the same
        return Problem(problem.question, problem.answer + "1", problem.solution)
    return Problem(problem.question, str(right + rng.choice([-1, 1]) * rng.randint(1, 10)), problem.solution)
