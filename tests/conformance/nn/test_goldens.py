"""The nn components against the goldens generated from the proven reference (fixtures/cases/nn.py)."""

from fixtures.cases.nn import CASES
from tests.harness.snapshot import golden_test

test_golden = golden_test(CASES)
