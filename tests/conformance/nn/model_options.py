"""What the nn tests of the A3 training API's model options share (spec/nn.py, TransformerLM: ``num_kv_heads``,
``head_dim``, ``tie_embeddings``).

The course's TransformerLM has none of them, so their tests are all at the strict level, and an implementation whose
constructor does not take one is reported *missing* for that test, not failed: a course model, or one reached
through the adapters bridge, is not wrong for lacking an extra the course never asks for.
"""

from __future__ import annotations

import inspect
from typing import Any

from spec import ComponentMissing


def needs_options(model_class: Any, options: dict[str, Any]) -> None:
    """Raise ComponentMissing when ``model_class``'s constructor cannot take every keyword of ``options``."""
    try:
        parameters = inspect.signature(model_class).parameters
    except (TypeError, ValueError):  # no readable signature: call it and let the test judge what happens
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    lacking = [name for name in options if name not in parameters]
    if lacking:
        keywords = f"keyword{'s' if len(lacking) > 1 else ''} {', '.join(lacking)}"
        raise ComponentMissing("TransformerLM", f"its constructor has no {keywords}: the A3 training API's model "
                                                "options, beyond the course's model")
