"""The distributed components' bridge (spec/distributed.py), for both versions of A2's adapters.

A2 2026 (handout 26.1.1): ``get_ddp(module)`` and ``ddp_on_after_backward(ddp_model, optimizer)`` (§5.3.2, DDP
overlapping individual parameter gradients: the handout's only DDP, so it is ``DDPIndividualParameters``),
``get_sharded_optimizer(params, optimizer_cls)`` (§6), and ``get_fsdp(module, compute_dtype)``,
``fsdp_on_after_backward(fsdp_model, optimizer)``, ``fsdp_gather_full_params(fsdp_model)`` (§7).
A2 2025 (handout 1.0.4): ``get_ddp_individual_parameters(module)``, ``get_ddp_bucketed(module, bucket_size_mb)``,
their ``ddp_individual_parameters_on_after_backward`` / ``ddp_bucketed_on_after_backward`` and
``ddp_bucketed_on_train_batch_start`` (§2.3), and ``get_sharded_optimizer(params, optimizer_cls, **kwargs)``.
A file may hold both sets (a 2025 file with the 2026 stubs pasted in, say): ``DDPIndividualParameters`` is built by
``get_ddp`` and, if the file lacks it or it raises NotImplementedError, by ``get_ddp_individual_parameters``, each
with its own hooks (the current interface first: a file that implements both is checked through it); it is missing
only when neither getter is implemented. The other adapters keep their names across the versions.

DDP: ``DDPIndividualParameters(module)`` and ``DDPBucketed(module, bucket_size_mb)`` wrap the object the getter
returns; calling it first calls ``ddp_bucketed_on_train_batch_start`` (bucketed only) and
``finish_gradient_synchronization()`` calls the getter's after-backward hook; everything else (``module``,
``parameters()`` ...) is the returned object's. The spec's interface has no optimizer to hand these hooks: they get a
stand-in that reports the component missing if used. Each rank's process reloads the adapters file from the label,
so these bridges are rebuilt there, never pickled.

``ShardedOptimizer(params, optimizer_cls, **kwargs)`` is the object ``get_sharded_optimizer`` returns. When the
file's function takes no such keywords (2026), the hyperparameters travel with what it does take, as the base
``torch.optim.Optimizer`` would apply its defaults: ``optimizer_cls`` becomes ``functools.partial(optimizer_cls,
**kwargs)`` and every parameter group gets them, the group's own values first.

FSDP: ``FSDP(module, compute_dtype)`` wraps what ``get_fsdp`` returns (``compute_dtype`` is passed when given, or when
the function requires it: 2026's has no default); ``finish_gradient_synchronization`` calls ``fsdp_on_after_backward``
(with the stand-in optimizer) and ``full_state_dict`` calls ``fsdp_gather_full_params(model)``, each falling back to
the returned object's own method when the file lacks the function; everything else is the returned object's, as for
DDP.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from spec.adapters.common import Adapters, bound
from spec import ComponentMissing

# Spec component -> its getters, the 2026 one first, each with (the after-backward hook, the train-batch-start hook
# or None): A2's DDP adapters.
DDP_ADAPTERS: dict[str, dict[str, tuple[str, str | None]]] = {
    "DDPIndividualParameters": {"get_ddp": ("ddp_on_after_backward", None),
                                "get_ddp_individual_parameters": ("ddp_individual_parameters_on_after_backward", None)},
    "DDPBucketed": {"get_ddp_bucketed": ("ddp_bucketed_on_after_backward", "ddp_bucketed_on_train_batch_start")},
}
BRIDGED = (*DDP_ADAPTERS, "ShardedOptimizer", "FSDP")  # what this bridge can provide


def members(adapters: Adapters) -> dict[str, Any]:
    """The distributed components that the adapters file provides, bridged."""
    found: dict[str, Any] = {}
    for component, getters in DDP_ADAPTERS.items():
        if any(adapters.has(getter) for getter in getters):
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
        getters = DDP_ADAPTERS[self.component]
        getter, self.ddp = self.adapters.call_first(self.component, tuple(getters), module, *args)
        self.after_backward, self.batch_start = getters[getter]
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
        if kwargs and not cls.adapters.accepts("get_sharded_optimizer", params, optimizer_cls, **kwargs):
            # 2026's get_sharded_optimizer(params, optimizer_cls): the hyperparameters go with the class and the groups.
            params, optimizer_cls = with_defaults(params, kwargs), functools.partial(optimizer_cls, **kwargs)
            kwargs = {}
        return cls.adapters.call("ShardedOptimizer", "get_sharded_optimizer", params, optimizer_cls, **kwargs)


def with_defaults(params: Any, defaults: dict[str, Any]) -> Any:
    """``params`` as parameter groups holding ``defaults`` where they set no value of their own (torch's Optimizer
    fills its defaults into every group the same way)."""
    if isinstance(params, Tensor):  # not an iterable of parameters: left for the optimizer to reject
        return params
    groups = list(params)
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    return [{**defaults, **group} for group in groups]


class FSDP(DataParallel):
    """The spec's FSDP around the object ``get_fsdp`` returns: DDP's bridge, plus ``full_state_dict``."""

    component = "FSDP"
    after_backward, batch_start = "fsdp_on_after_backward", None

    def __init__(self, module: nn.Module, compute_dtype: torch.dtype | None = None):
        # compute_dtype when given or required (2026's get_fsdp(module, compute_dtype) has no default): a
        # get_fsdp(module) without it still serves the float32 tests.
        omit = compute_dtype is None and self.adapters.accepts("get_fsdp", module)
        self.ddp = self.adapters.call("FSDP", "get_fsdp", module, *(() if omit else (compute_dtype,)))
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
