"""The alignment programs' GSM8K problems (fixtures/data/gsm8k): every problem read with its answer, the worked
solution without the calculator annotations, and the count of calculator steps the difficulty filter uses."""

from __future__ import annotations

import json
import lzma

from fixtures import FIXTURES_DIR
from impl.programs.alignment_tasks import gsm8k_problems


def raw_rows(split: str) -> list[dict]:
    with lzma.open(FIXTURES_DIR / "data" / "gsm8k" / f"{split}.jsonl.xz", "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def test_every_gsm8k_problem_is_read_with_its_answer_and_its_calculator_steps():
    for split, size in (("train", 7473), ("test", 1319)):  # GSM8K's published split sizes
        rows, problems = raw_rows(split), gsm8k_problems(split)
        assert len(problems) == len(rows) == size
        for row, problem in zip(rows, problems):
            assert row["answer"].endswith(f"#### {problem.answer}")
            assert problem.calculations == row["answer"].count("<<")
            assert "<<" not in problem.solution and problem.solution
    first = gsm8k_problems("train")[0]  # "Natalia sold 48/2 = <<48/2=24>>24 clips in May. ..."
    assert (first.answer, first.calculations) == ("72", 2)
    assert first.solution.startswith("Natalia sold 48/2 = 24 clips in May.")
