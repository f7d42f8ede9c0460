"""The alignment components against the goldens generated from the proven reference (fixtures/cases/alignment.py)."""

from fixtures.cases.alignment import CASES
from tests.harness.snapshot import golden_test

test_golden = golden_test(CASES)
