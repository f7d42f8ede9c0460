"""The kernels' bridge, FlashAttention-2 (spec/kernels.py, A2 §4): ``FlashAttentionPyTorch`` and
``FlashAttentionTriton`` are the autograd Function classes that ``get_flashattention_autograd_function_pytorch()``
and ``get_flashattention_autograd_function_triton()`` return (the handout also spells the second
``get_flash_autograd_function_triton``; either is taken), used as they are, like ``get_adamw_cls``.

The multi-head ``flash_attention`` and ``RMSNormTriton`` have no course adapter: through the bridge they are always
missing. (The 2025 course adapters have no RMSNorm getter; one was added by the FlashAttention-2 helper so that the
bridge tests pass, and its owner may bridge it instead.)
"""

from __future__ import annotations

from typing import Any

from spec.adapters.common import Adapters
from spec import ComponentMissing

# Components that are classes a course getter returns (A2's FlashAttention-2 autograd Functions): the getters,
# the first one the file has is used.
FUNCTION_GETTERS: dict[str, tuple[str, ...]] = {
    "FlashAttentionPyTorch": ("get_flashattention_autograd_function_pytorch",),
    "FlashAttentionTriton": ("get_flashattention_autograd_function_triton", "get_flash_autograd_function_triton"),
}
BRIDGED = tuple(FUNCTION_GETTERS)  # what this bridge can provide


def members(adapters: Adapters) -> dict[str, Any]:
    """The kernels that the adapters file provides, bridged."""
    found = {}
    for component, getters in FUNCTION_GETTERS.items():
        getter = next((name for name in getters if adapters.has(name)), None)
        if getter is not None:
            found[component] = bridge_autograd_function(adapters, component, getter)
    return found


def bridge_autograd_function(adapters: Adapters, component: str, getter: str) -> type:
    """The autograd Function class ``getter()`` returns; if it gives none, a stand-in whose ``apply`` raises, so that
    only the component's own tests see it: missing for a stub, failed for a getter that crashes."""
    try:
        function = getattr(adapters.module, getter)()
    except NotImplementedError:
        return unavailable_function(ComponentMissing(component, f"adapters.{getter} raises NotImplementedError"))
    except Exception as error:
        failure = RuntimeError(f"adapters.{getter}() failed: {type(error).__name__}: {error}")
        failure.__cause__ = error
        return unavailable_function(failure)
    if function is None:
        return unavailable_function(ComponentMissing(component, f"adapters.{getter} returns None"))
    return function


def unavailable_function(error: Exception) -> type:
    class UnavailableFunction:
        @staticmethod
        def apply(*args, **kwargs):
            raise error.with_traceback(None)

    return UnavailableFunction
