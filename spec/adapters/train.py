"""The training pieces' bridge (spec/train.py): the functions call their ``run_*`` adapter with the same
arguments (``cross_entropy(inputs, targets)`` calls ``run_cross_entropy(inputs, targets)``); ``get_batch`` calls
``run_get_batch``, which takes no random generator; ``AdamW`` is the class ``get_adamw_cls()`` returns.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

import spec.train
from spec import ComponentMissing
from spec.adapters.common import Adapters, bridge_functions

# Spec function -> the adapter taking the same arguments in the same order (names may differ).
FUNCTIONS: dict[str, tuple[Callable, str]] = {
    "cross_entropy": (spec.train.cross_entropy, "run_cross_entropy"),
    "clip_gradients": (spec.train.clip_gradients, "run_gradient_clipping"),
    "lr_cosine_schedule": (spec.train.lr_cosine_schedule, "run_get_lr_cosine_schedule"),
    "save_checkpoint": (spec.train.save_checkpoint, "run_save_checkpoint"),
    "load_checkpoint": (spec.train.load_checkpoint, "run_load_checkpoint"),
}
BRIDGED = (*FUNCTIONS, "get_batch", "AdamW")  # what this bridge can provide


def members(adapters: Adapters) -> dict[str, Any]:
    """The training components that the adapters file provides, bridged."""
    found: dict[str, Any] = bridge_functions(adapters, FUNCTIONS)
    if adapters.has("run_get_batch"):
        found["get_batch"] = bridge_get_batch(adapters)
    if adapters.has("get_adamw_cls"):
        found["AdamW"] = bridge_adamw(adapters)
    return found


def bridge_get_batch(adapters: Adapters) -> Callable:
    def get_batch(dataset, batch_size: int, context_length: int, device, rng=None):
        """``get_batch`` through adapters.run_get_batch, which takes no random generator."""
        if rng is not None:
            raise ComponentMissing("get_batch", "seeded sampling (rng) is not available through adapters.run_get_batch")
        return adapters.call("get_batch", "run_get_batch", dataset, batch_size, context_length, device)

    get_batch.__signature__ = inspect.signature(spec.train.get_batch)
    get_batch.kit_unsupported = frozenset({"rng"})  # tests then sample with fresh entropy, or report missing
    return get_batch


def bridge_adamw(adapters: Adapters) -> type:
    """The class ``get_adamw_cls()`` returns. If it gives none, a stand-in that raises when built, so
    that only AdamW's own tests see it: missing for a stub, failed for a broken get_adamw_cls."""
    try:
        optimizer = adapters.module.get_adamw_cls()
    except NotImplementedError:
        return unavailable_optimizer(ComponentMissing("AdamW", "adapters.get_adamw_cls raises NotImplementedError"))
    except Exception as error:
        failure = RuntimeError(f"adapters.get_adamw_cls() failed: {type(error).__name__}: {error}")
        failure.__cause__ = error
        return unavailable_optimizer(failure)
    if optimizer is None:
        return unavailable_optimizer(ComponentMissing("AdamW", "adapters.get_adamw_cls returns None"))
    return optimizer


def unavailable_optimizer(error: Exception) -> type:
    class UnavailableAdamW(torch.optim.Optimizer):
        def __init__(self, *args, **kwargs):
            raise error.with_traceback(None)

    return UnavailableAdamW
