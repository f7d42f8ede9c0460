"""A course-style ``adapters.py`` as a student's solution often reads: the reference's glue
(adapters_reference.py), but ``run_linear`` builds its module with no dtype, in the default float32, and the
Triton FlashAttention-2 getter is not written yet (it raises NotImplementedError, as the course's stub does).
Both are right by the course: the suite must report what adapters cannot show as missing, never as failed
(tests/kit/test_false_alarms.py).
"""

from torch import Tensor

import impl
from tests.kit.adapters_reference import *  # noqa: F403


def run_linear(d_in: int, d_out: int, weights: Tensor, in_features: Tensor) -> Tensor:
    linear = impl.Linear(d_in, d_out)
    linear.load_state_dict({"weight": weights})
    return linear(in_features)


def get_flashattention_autograd_function_triton() -> type:
    raise NotImplementedError
