"""A half-done course-style ``adapters.py``: the reference's (adapters_reference.py), less two functions.

- ``run_get_batch`` is absent: the bridge must leave ``get_batch`` out (reported missing);
- ``run_softmax`` raises NotImplementedError, as every body of the course's stub file does:
  the bridge must report ``softmax`` missing, not failed.
"""

from torch import Tensor

from tests.kit.adapters_reference import *  # noqa: F403

del run_get_batch  # noqa: F821


def run_softmax(in_features: Tensor, dim: int) -> Tensor:
    raise NotImplementedError
