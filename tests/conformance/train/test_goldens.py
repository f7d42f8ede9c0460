"""The training components against the goldens generated from the proven reference (fixtures/cases/train.py)."""

from fixtures.cases.train import CASES
from tests.harness.snapshot import golden_test

test_golden = golden_test(CASES)
