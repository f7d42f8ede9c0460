"""What the nn tests of the A3 training API's model options share (spec/nn.py, TransformerLM: ``num_kv_heads``,
``head_dim``, ``tie_embeddings``, ``norm_eps``).

The course's TransformerLM has none of them, so their tests are all at the strict level, and an implementation whose
constructor does not take one is reported *missing* for that test, not failed: a course model, or one reached
through the adapters bridge, is not wrong for lacking an extra the course never asks for.
"""

from __future__ import annotations

from typing import Any

from tests.harness.helpers import needs_keywords


def needs_options(model_class: Any, options: dict[str, Any]) -> None:
    """Raise ComponentMissing when ``model_class``'s constructor cannot take every keyword of ``options``."""
    needs_keywords(model_class, "TransformerLM", options, "the A3 training API's model options, beyond the course's "
                                                          "model")
