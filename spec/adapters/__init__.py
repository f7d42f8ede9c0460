"""The course-adapter bridge: check a course-style ``adapters.py`` unchanged.

The course's own tests call the ``run_*`` / ``get_*`` functions of ``tests/adapters.py``
(assignment1-basics, and A2's, its 2026 and its 2025 names alike). ``--impl adapters:path/to/adapters.py`` loads such a file and wraps
it in the spec's interfaces: functions become thin wrappers with the spec's signatures, modules
``torch.nn.Module`` classes with the spec's constructors and parameter names, and the classes a
getter returns (``get_adamw_cls``) are used as they are.

One module per area holds that area's bridge (spec/adapters/tokenizer.py, nn.py, train.py,
kernels.py, distributed.py; the shared pieces are in common.py): its ``members(adapters)`` gives
the area's components that the file provides, and its ``BRIDGED`` names every component it can
bridge. A component no module bridges has no course adapter (decoding, spec/decode.py, for one):
through this bridge it is always absent, hence missing (``NO_COURSE_ADAPTER``).

A function the file lacks leaves its component absent (reported missing). A function that
raises NotImplementedError, as every body of the course's stub file does, reports its
component missing when called (for the tokenizer object, when one of its methods does). Where a component has
more than one adapter (A2's DDP: 2026's ``get_ddp``, 2025's ``get_ddp_individual_parameters``), the first one the
file implements serves, and it is missing only when none is implemented (``Adapters.call_first``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spec import COMPONENTS, Implementation, area_modules
from spec.adapters.common import Adapters, import_file

__all__ = ["NO_COURSE_ADAPTER", "load_adapters"]

BRIDGES = area_modules(__name__)
# Components the course's adapters.py has no function for: always missing through the bridge.
NO_COURSE_ADAPTER = frozenset(COMPONENTS) - {component for bridge in BRIDGES for component in bridge.BRIDGED}


def load_adapters(path: Path) -> Implementation:
    """Import a course-style adapters file and bundle what it provides under the spec's names."""
    adapters = Adapters(import_file(Path(path)), Path(path))
    members: dict[str, Any] = {}
    for bridge in BRIDGES:
        members |= bridge.members(adapters)
    return Implementation(name=f"adapters ({path})", members=members)
