"""Mutants: the reference with one component subtly broken. The conformance suite must reject each.

Every mutant replaces exactly one spec component with a variant that subclasses or wraps the
reference and changes one thing: a mistake someone building the course's system could make.
Each area's module (tests/kit/mutants/<area>.py) defines its mutants and lists them in its own
``MUTANTS``; this package assembles them (``MUTANTS``, ``BY_NAME``), and
``tests/kit/test_mutants.py`` runs the conformance suite on each one, restricted to its
component, and counts how many the suite rejects.

Each mutant is also an implementation the suite can be pointed at by hand::

    python -m pytest tests/conformance --impl tests.kit.mutants:rope_half_split --component RotaryEmbedding

Mutants that are deliberately absent because no test can or should see them:
- RoPE positions counted from 1 in the LM: RoPE is relative, so a constant shift of every
  position leaves attention unchanged; it is not a behavioural bug.
- clip with ``>=`` instead of ``>``: differs only when the norm equals M to the last bit.
"""

from __future__ import annotations

from spec import Implementation, area_modules
from tests.kit.mutants.common import Mutant

__all__ = ["MUTANTS", "Mutant", "bundle"]

MUTANTS: list[Mutant] = [mutant for module in area_modules(__name__) for mutant in module.MUTANTS]
BY_NAME: dict[str, Mutant] = {m.name: m for m in MUTANTS}


def bundle(name: str) -> Implementation:
    """The implementation of mutant ``name``."""
    return BY_NAME[name].implementation()


def __getattr__(name: str) -> Implementation:
    # ``--impl tests.kit.mutants:<name>``: the loader does getattr(module, name).
    if name in BY_NAME:
        return bundle(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r} (mutants: {sorted(BY_NAME)})")


# A mutant name shadowed by a module attribute would make ``--impl tests.kit.mutants:<name>``
# load that attribute instead of the bundle (module __getattr__ only sees missing names): the
# package's attributes include its area modules (tokenizer, nn, ...) as well as the names above.
_SHADOWED = set(BY_NAME) & set(globals())
assert not _SHADOWED, f"mutant names shadowed by module attributes: {sorted(_SHADOWED)}"
