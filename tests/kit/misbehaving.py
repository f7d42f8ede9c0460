"""Implementations that misbehave instead of being wrong: the suite must contain them (tests/kit/test_containment.py).

``hanging``: the reference whose ``softmax`` never returns. ``crashing``: the reference whose ``softmax`` ends the
interpreter (as a segfault in an extension would): what the run had reported before stays in its JSON report.
"""

from __future__ import annotations

import os
import time

from spec import Implementation
from tests.kit.mutants.common import reference_with


def _softmax_hangs(x, dim):
    time.sleep(3600)


def _softmax_kills_the_interpreter(x, dim):
    os._exit(139)


hanging: Implementation = reference_with("softmax", _softmax_hangs, "misbehaving: softmax hangs")
crashing: Implementation = reference_with("softmax", _softmax_kills_the_interpreter,
                                          "misbehaving: softmax kills the interpreter")
