"""Goldens in fixtures/goldens/<area>/: syrupy extensions (npz floats with tolerances, JSON for discrete outputs)
and the golden test every area's conformance folder runs on its cases (fixtures/cases/<area>.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from syrupy.extensions.json import JSONSnapshotExtension
from syrupy.extensions.single_file import SingleFileSnapshotExtension

from fixtures import GOLDENS_DIR
from fixtures.cases.common import Case, Tensors, from_npz, run_case, stored_inputs, to_npz
from tests.harness.compare import Mismatch, assert_close


def golden_dir(test_location) -> str:
    """fixtures/goldens/<area>/<test module>/ for a test in tests/conformance/<area>/: resolved from the package,
    never from the working directory. The module's own folder is syrupy's rule (a single-file snapshot belongs to
    the test module its folder is named after; any other file would be taken for an unused snapshot)."""
    return str(GOLDENS_DIR / Path(test_location.filepath).parent.name / test_location.basename)


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
        return golden_dir(test_location)

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
        return golden_dir(test_location)


def what_case_is(case: Case, inputs: Tensors) -> str:
    """What a golden case exercises, its inputs' shapes and how to load them: printed under its mismatch."""
    shown = [f"{k} {tuple(v.shape)} {str(v.dtype).removeprefix('torch.')}" for k, v in inputs.items()
             if not k.startswith("param/")]
    loaded = sum(k.startswith("param/") for k in inputs)
    return (f"  the case: {case.description}\n"
            f"  inputs: {', '.join(shown)}" + (f", and {loaded} loaded parameter tensors" if loaded else "") + "\n"
            f"  load them: python -c \"from fixtures.cases import inputs; print(inputs('{case.name}'))\"")


def golden_test(cases: dict[str, Case]):
    """The test of one area's golden cases: ``test_golden = golden_test(CASES)`` in
    tests/conformance/<area>/test_goldens.py, with the ``CASES`` of fixtures/cases/<area>.py."""

    @pytest.mark.parametrize("name", [
        pytest.param(name, id=name, marks=[pytest.mark.component(c.component)] + [pytest.mark.strict] * (c.level == "strict"))
        for name, c in cases.items()])
    def test_golden(name, impl, device, snapshot, request):
        """Outputs on the stored inputs equal the reference's golden outputs within the dtype's tolerance."""
        case = cases[name]
        updating = request.config.option.update_snapshots
        if updating:
            inputs = case.make_inputs(torch.Generator().manual_seed(case.seed))
        elif case.path.exists():
            inputs = stored_inputs(case)
        else:
            pytest.fail(f"golden {case.path} is missing: run `nox -s fixtures` to generate it from the reference")
        request.node.user_properties.append(("reproduce", (
            "python -c \"from spec.loading import load_implementation; from fixtures.cases import reproduce; "
            f"reproduce('{name}', load_implementation('{impl.label}'))\"")))
        outputs = {f"output/{k}": v for k, v in run_case(case, impl, inputs, device).items()}
        data = {f"input/{k}": v for k, v in inputs.items()} | outputs
        if not updating:  # the explicit check names the worst mismatch; syrupy's own says only "differs"
            stored = {k: v for k, v in from_npz(case.path.read_bytes()).items() if k.startswith("output/")}
            try:
                assert_matches_golden(outputs, stored)
            except Mismatch as mismatch:
                raise Mismatch(f"golden case {name!r}: {mismatch}\n{what_case_is(case, inputs)}") from None
        assert data == snapshot.use_extension(NpzSnapshotExtension)

    return test_golden
