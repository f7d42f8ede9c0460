"""Syrupy extensions for goldens in fixtures/goldens: npz floats with tolerances, JSON for discrete outputs."""

from __future__ import annotations

from syrupy.extensions.json import JSONSnapshotExtension
from syrupy.extensions.single_file import SingleFileSnapshotExtension

from fixtures import GOLDENS_DIR
from fixtures.cases import Tensors, from_npz, to_npz
from tests.harness.compare import Mismatch, assert_close


def assert_matches_golden(got: Tensors, golden: Tensors) -> None:
    """Same keys; every tensor within the tolerance of the golden's dtype (exact for integers)."""
    if set(got) != set(golden):
        raise Mismatch(f"keys {sorted(got)} differ from the golden's {sorted(golden)}")
    for key in sorted(golden):
        assert_close(got[key], golden[key], what=key)


class NpzSnapshotExtension(SingleFileSnapshotExtension):
    """Stores a dict of tensors as one npz; ``matches`` applies the per-dtype tolerance table."""

    file_extension = "npz"

    @classmethod
    def dirname(cls, *, test_location) -> str:
        # Goldens live in fixtures/, resolved from the package, never from the working directory.
        return str(GOLDENS_DIR / test_location.basename)

    def serialize(self, data: Tensors, **kwargs) -> bytes:
        return to_npz(data)

    def matches(self, *, serialized_data: bytes, snapshot_data: bytes) -> bool:
        try:
            assert_matches_golden(from_npz(serialized_data), from_npz(snapshot_data))
        except Mismatch:
            return False
        return True

    def diff_lines(self, serialized_data: bytes, snapshot_data: bytes):
        try:
            assert_matches_golden(from_npz(serialized_data), from_npz(snapshot_data))
        except Mismatch as mismatch:
            yield str(mismatch)


class JsonSnapshotExtension(JSONSnapshotExtension):
    """Discrete goldens (merges, ids) as JSON, compared exactly, beside the npz ones in fixtures/goldens."""

    @classmethod
    def dirname(cls, *, test_location) -> str:
        return str(GOLDENS_DIR / test_location.basename)
