"""Every component against the goldens generated from the proven reference (fixtures/cases.py)."""

import pytest
import torch

from fixtures.cases import CASES, from_npz, run_case, stored_inputs
from tests.harness.snapshot import NpzSnapshotExtension, assert_matches_golden


@pytest.fixture
def golden(snapshot):
    return snapshot.use_extension(NpzSnapshotExtension)


@pytest.mark.parametrize("name", [pytest.param(name, id=name, marks=pytest.mark.component(c.component))
                                  for name, c in CASES.items()])
def test_golden(name, impl, device, golden, request):
    """Outputs on the stored inputs equal the reference's golden outputs within the dtype's tolerance."""
    case = CASES[name]
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
        assert_matches_golden(outputs, stored)
    assert data == golden
