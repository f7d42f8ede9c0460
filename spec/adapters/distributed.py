"""The distributed components' bridge (spec/distributed.py).

DDP (A2 §5–§6): ``DDPIndividualParameters(module)`` and
``DDPBucketed(module, bucket_size_mb)`` wrap the object ``get_ddp_individual_parameters`` /
``get_ddp_bucketed`` returns; calling it first calls ``ddp_bucketed_on_train_batch_start`` (bucketed only)
and ``finish_gradient_synchronization()`` calls ``ddp_*_on_after_backward``; everything else (``module``,
``parameters()`` ...) is the returned object's. The spec's interface has no optimizer to hand these hooks:
they get a stand-in that reports the component missing if used. ``ShardedOptimizer(params, optimizer_cls,
**kwargs)`` is the object ``get_sharded_optimizer`` returns. Each rank's process reloads the adapters file
from the label, so these bridges are rebuilt there, never pickled.

FSDP (A2 §7): ``FSDP(module, compute_dtype)`` wraps what ``get_fsdp`` returns;
``finish_gradient_synchronization`` calls ``fsdp_on_after_backward`` (with the stand-in optimizer) and
``full_state_dict`` calls ``fsdp_gather_full_params(model)``, each falling back to the returned object's own
method when the file lacks the function; everything else is the returned object's, as for DDP.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from spec.adapters.common import Adapters, bound
from spec import ComponentMissing

# Spec component -> (the getter, the after-backward hook, the train-batch-start hook or None): A2's DDP adapters.
DDP_ADAPTERS: dict[str, tuple[str, str, str | None]] = {
    "DDPIndividualParameters": ("get_ddp_individual_parameters", "ddp_individual_parameters_on_after_backward", None),
    "DDPBucketed": ("get_ddp_bucketed", "ddp_bucketed_on_after_backward", "ddp_bucketed_on_train_batch_start"),
}
BRIDGED = (*DDP_ADAPTERS, "ShardedOptimizer", "FSDP")  # what this bridge can provide


def members(adapters: Adapters) -> dict[str, Any]:
    """The distributed components that the adapters file provides, bridged."""
    found: dict[str, Any] = {}
    for component, (getter, *_) in DDP_ADAPTERS.items():
        if adapters.has(getter):
            found[component] = bound(adapters, DataParallel, component, component=component)
    if adapters.has("get_sharded_optimizer"):
        found["ShardedOptimizer"] = bound(adapters, ShardedOptimizer)
    if adapters.has("get_fsdp"):
        found["FSDP"] = bound(adapters, FSDP)
    return found


class NoOptimizer:
    """Handed to the DDP hooks in place of the optimizer the course's tests pass: the spec's interface has none."""

    def __init__(self, component: str, hook: str):
        self.component, self.hook = component, hook

    def __getattr__(self, name: str) -> Any:
        raise ComponentMissing(self.component, f"adapters.{self.hook} uses its optimizer argument (.{name}), which "
                                               "the spec's interface does not provide")


class DataParallel:
    """The spec's DDP wrapper around the object the course's getter returns (bound to one file and component)."""

    adapters: ClassVar[Adapters]
    component: ClassVar[str]

    def __init__(self, module: nn.Module, *args: Any):
        getter, self.after_backward, self.batch_start = DDP_ADAPTERS[self.component]
        self.ddp = self.adapters.call(self.component, getter, module, *args)
        self.wrapped = module

    @property
    def module(self) -> nn.Module:
        return getattr(self.ddp, "module", self.wrapped)

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        if self.batch_start is not None:
            optimizer = NoOptimizer(self.component, self.batch_start)
            self.adapters.call(self.component, self.batch_start, self.ddp, optimizer)
        return self.ddp(*inputs, **kwargs)

    def finish_gradient_synchronization(self) -> None:
        self.adapters.call(self.component, self.after_backward, self.ddp,
                           NoOptimizer(self.component, self.after_backward))

    def __getattr__(self, name: str) -> Any:  # parameters(), named_parameters(), state_dict(), train() ...
        if name == "ddp":  # not set yet: the getter failed in __init__
            raise AttributeError(name)
        return getattr(self.ddp, name)


class ShardedOptimizer:
    """``ShardedOptimizer(params, optimizer_cls, **kwargs)`` is the object get_sharded_optimizer returns."""

    adapters: ClassVar[Adapters]

    def __new__(cls, params, optimizer_cls: type[torch.optim.Optimizer], **kwargs: Any):
        return cls.adapters.call("ShardedOptimizer", "get_sharded_optimizer", params, optimizer_cls, **kwargs)


class FSDP(DataParallel):
    """The spec's FSDP around the object ``get_fsdp`` returns: DDP's bridge, plus ``full_state_dict``."""

    component = "FSDP"
    after_backward, batch_start = "fsdp_on_after_backward", None

    def __init__(self, module: nn.Module, compute_dtype: torch.dtype | None = None):
        # compute_dtype only when given: a get_fsdp(module) without it still serves the float32 tests.
        self.ddp = self.adapters.call("FSDP", "get_fsdp", module, *(() if compute_dtype is None else (compute_dtype,)))
        self.wrapped = module

    def finish_gradient_synchronization(self) -> None:
        if self.adapters.has(self.after_backward):
            super().finish_gradient_synchronization()
        else:
            self.ddp.finish_gradient_synchronization()

    def full_state_dict(self) -> dict[str, Tensor]:
        if self.adapters.has("fsdp_gather_full_params"):
            return self.adapters.call("FSDP", "fsdp_gather_full_params", self.ddp)
        return self.ddp.full_state_dict()
