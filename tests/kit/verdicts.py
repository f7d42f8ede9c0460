"""A mutant's verdict: whether the conformance suite rejected it. Recorded by test_mutants.py, printed by conftest.py."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class Verdict:
    mutant: str
    component: str
    killed: bool
    detail: str  # the test that rejected the mutant, or why the run did not


verdicts_key = pytest.StashKey[list[Verdict]]()
