"""Implementations that misbehave instead of being wrong: the suite must contain them (tests/kit/test_containment.py).

``hanging``: the reference whose ``softmax`` never returns. ``hanging_deaf``: never returns and never lets the
timeout's signal in, as a hang inside one C call of an extension does. ``crashing``: the reference whose ``softmax`` ends the
interpreter (as a segfault in an extension would): what the run had reported before stays in its JSON report.
``losing_the_context``: its ``softmax`` fails as a CUDA device-side assert does, and from then on its
``cross_entropy`` (whose tests run later) fails with the same error in that process, as every CUDA call does once
the context is lost: staged on a CPU, so that the kit's own test needs no GPU.
"""

from __future__ import annotations

import os
import signal
import time

import impl as reference
from spec import Implementation
from tests.kit.mutants.common import reference_with


def _softmax_hangs(x, dim):
    time.sleep(3600)


def _softmax_hangs_deaf_to_signals(x, dim):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(3600)


def _softmax_kills_the_interpreter(x, dim):
    os._exit(139)


LOST = "CUDA error: device-side assert triggered (staged by tests/kit/misbehaving.py)"
_context_lost = False


def _softmax_loses_the_context(x, dim):
    global _context_lost
    _context_lost = True
    raise RuntimeError(LOST)


def _cross_entropy_in_a_lost_context(logits, targets):
    if _context_lost:
        raise RuntimeError(LOST)
    return reference.cross_entropy(logits, targets)


hanging: Implementation = reference_with("softmax", _softmax_hangs, "misbehaving: softmax hangs")
hanging_deaf: Implementation = reference_with("softmax", _softmax_hangs_deaf_to_signals,
                                              "misbehaving: softmax hangs, deaf to signals")
crashing: Implementation = reference_with("softmax", _softmax_kills_the_interpreter,
                                          "misbehaving: softmax kills the interpreter")
losing_the_context: Implementation = reference_with("softmax", _softmax_loses_the_context,
                                                    "misbehaving: softmax loses the CUDA context")
losing_the_context.members["cross_entropy"] = _cross_entropy_in_a_lost_context
