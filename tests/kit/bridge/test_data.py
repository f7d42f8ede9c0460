"""The web-data filtering functions through the bridge (spec/adapters/data.py)."""

from __future__ import annotations

import pytest

import spec.data
from spec import ComponentMissing
from tests.kit.bridge.common import REFERENCE_ADAPTERS
from tests.kit.run_suite import run_suite


def test_minhash_has_no_seed(bridged, tmp_path):
    (tmp_path / "a.txt").write_text("one document of a few words")
    bridged.minhash_deduplication([tmp_path / "a.txt"], 10, 5, 2, 0.8, tmp_path / "out")
    assert (tmp_path / "out" / "a.txt").read_text() == "one document of a few words"
    assert "seed" in bridged.minhash_deduplication.kit_unsupported
    with pytest.raises(ComponentMissing, match="seed"):
        bridged.minhash_deduplication([tmp_path / "a.txt"], 10, 5, 2, 0.8, tmp_path / "out", seed=3)


def test_data_suite_through_the_reference_adapters(tmp_path):
    """The data area's conformance tests pass through the course adapters, except the seeded one: missing."""
    components = [arg for component in spec.data.__all__ for arg in ("--component", component)]
    suite = run_suite(tmp_path, "--impl", f"adapters:{REFERENCE_ADAPTERS}", *components)
    assert suite.report is not None, suite.output[-3000:]
    statuses = {r["nodeid"]: r["status"] for r in suite.report["results"]}
    assert {node for node, status in statuses.items() if status != "pass"} == {
        "tests/conformance/data/test_dedup.py::test_minhash_same_seed_same_output"}
    assert statuses["tests/conformance/data/test_dedup.py::test_minhash_same_seed_same_output"] == "missing"
