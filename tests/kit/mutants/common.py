"""What every area's mutants share: the Mutant, a reference with one component replaced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import impl as reference
from spec import COMPONENTS, Implementation


@dataclass(frozen=True)
class Mutant:
    name: str  # a Python identifier: ``--impl tests.kit.mutants:<name>``
    component: str  # the spec component it breaks (and the only one)
    description: str  # what is wrong, in the spec's terms
    broken: Any  # replaces the reference's member for ``component``
    # The level whose checks must reject it: "course" for a mistake the course would call wrong, "strict" for a
    # breach of only the kit's stronger conventions (an error type, say), which the course level rightly accepts.
    level: str = "course"

    def implementation(self) -> Implementation:
        """The reference's members, with ``component`` replaced by the broken variant."""
        return reference_with(self.component, self.broken, name=f"mutant {self.name}")


def reference_with(component: str, member: Any, name: str) -> Implementation:
    """The reference's members with one replaced (a mutant, or a correct variant the suite must accept)."""
    members = {component_name: getattr(reference, component_name) for component_name in COMPONENTS}
    members[component] = member
    return Implementation(name=name, version=reference.__version__, members=members)
