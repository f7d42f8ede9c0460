"""Resolve ``--impl`` into the bundle the suite checks, with missing members as stubs.

Accepted forms: ``module`` (the module's attributes are the members), ``module:attr``
(an attribute holding a module, an object or a ``spec.Implementation``) and
``adapters:path/to/adapters.py`` (a course-style adapters file, through the bridge in
spec/adapters/). In spec/, not tests/, so that the benchmarks resolve ``--impl`` the same way;
the expected-failures file is the suite's alone (tests/harness/expected_failures.py).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spec import COMPONENTS, ComponentMissing

REFERENCE = "impl"
ENV_VAR = "CS336_IMPL"


def needs(member: Any, feature: str, component: str) -> None:
    """Raise ComponentMissing when ``member`` declares that it cannot provide ``feature``.

    Members built by the adapters bridge declare ``kit_unsupported`` (for example
    ``{"initialization"}``): the course's adapters expose no way to check those features.
    """
    if feature in getattr(member, "kit_unsupported", ()):
        raise ComponentMissing(component, f"{feature} cannot be checked through this implementation's interface")


@dataclass(repr=False)
class Bundle:
    """What conformance tests see as ``impl``: attribute access by component name."""

    label: str  # what --impl said
    source: Any
    name: str
    version: str
    expected_failures: Path | None

    def __repr__(self) -> str:
        # One line: Hypothesis prints the fixtures beside a falsifying example, and the source's repr (a module,
        # an Implementation with every member) would bury the drawn arguments.
        return f"<implementation {self.name} (--impl {self.label})>"

    def __getattr__(self, member: str) -> Any:
        if member not in COMPONENTS:
            raise AttributeError(f"{member!r} is not a component of the spec; the names are {list(COMPONENTS)}")
        found = getattr(self.source, member, None)
        if found is None:
            raise ComponentMissing(member, f"{self.label} does not provide it")
        return found

    def provides(self, member: str) -> bool:
        return getattr(self.source, member, None) is not None

    @property
    def is_reference(self) -> bool:
        return self.label == REFERENCE


def load_implementation(label: str) -> Bundle:
    if label.startswith("adapters:"):
        from spec.adapters import load_adapters

        source = load_adapters(Path(label.removeprefix("adapters:")))
    else:
        module_name, _, attr = label.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(f"cannot import implementation module {module_name!r} (from --impl {label!r}): {error}") from error
        if attr and not hasattr(module, attr):
            raise ValueError(f"module {module_name!r} has no attribute {attr!r} (from --impl {label!r})")
        source = getattr(module, attr) if attr else module
    expected = getattr(source, "expected_failures", None)
    return Bundle(
        label=label,
        source=source,
        name=str(getattr(source, "name", None) or label),
        version=str(getattr(source, "__version__", None) or getattr(source, "version", None) or _distribution_version(label)),
        expected_failures=Path(expected) if expected else None,
    )


def _distribution_version(label: str) -> str:
    top = label.partition(":")[0].split(".")[0]
    try:
        return importlib.metadata.version(top)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
