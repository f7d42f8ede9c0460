"""The goldens: manifest in step with the files, and never regenerated from user code."""

from fixtures.generate import check_manifest
from tests.kit.run_suite import run_suite


def test_manifest_matches_every_golden_file():
    assert check_manifest() == []


def test_goldens_are_never_regenerated_from_another_implementation(tmp_path):
    run = run_suite(tmp_path, "--impl", "tests.kit.toy_partial", "--snapshot-update")
    assert run.returncode == 4, run.output
    assert "goldens are generated from the reference implementation only" in run.output
