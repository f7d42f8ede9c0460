"""The reference mirrors the contract: impl/<area> exports exactly the components of spec/<area>.py."""

import importlib

import pytest

from spec import AREAS, COMPONENTS


@pytest.mark.parametrize("area", AREAS)
def test_impl_area_exports_its_spec_components(area):
    spec_names = importlib.import_module(f"spec.{area}").__all__
    assert importlib.import_module(f"impl.{area}").__all__ == spec_names
    assert all(COMPONENTS[name] == area for name in spec_names)


def test_components_are_unique_across_areas():
    names = [name for area in AREAS for name in importlib.import_module(f"spec.{area}").__all__]
    assert len(names) == len(set(names)) == len(COMPONENTS)


def test_no_nox_session_takes_an_areas_name():
    """noxfile.py makes one conformance session per area (`nox -s nn`): a session of the same name defined by hand
    would replace it (nox only warns)."""
    import ast

    from spec import AREAS
    from tests.harness.helpers import REPO

    tree = ast.parse((REPO / "noxfile.py").read_text())
    sessions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                and any("session" in ast.unparse(d) for d in node.decorator_list)}
    assert not sessions & set(AREAS), sessions & set(AREAS)
