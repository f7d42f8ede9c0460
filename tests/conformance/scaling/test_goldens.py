"""The scaling components against the goldens generated from the proven reference (fixtures/cases/scaling.py)."""

from fixtures.cases.scaling import CASES
from tests.harness.snapshot import golden_test

test_golden = golden_test(CASES)
