"""A mutant's verdict: whether the conformance suite rejected it. Recorded by test_mutants.py, printed by conftest.py."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class Verdict:
    mutant: str
    component: str
    caught_at: str | None  # the lowest verdict level that rejected the mutant (course, strict), None: it survived
    detail: str  # the test that rejected the mutant, or why the run did not

    @property
    def killed(self) -> bool:
        return self.caught_at is not None


verdicts_key = pytest.StashKey[list[Verdict]]()
