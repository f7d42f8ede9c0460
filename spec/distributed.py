"""Distributed training (handout A2 §5–§7): DDP, optimizer-state sharding, FSDP.

The docstrings are normative. Every component runs inside an initialized default process group
(``torch.distributed.init_process_group``): gloo on CPU tensors, NCCL on CUDA tensors, any world
size ≥ 1 (uneven shards included). Communication goes through ``torch.distributed`` collectives;
the components never create process groups of their own and never touch ranks' devices other
than the module's.

DDP's communication pattern (what is all-reduced, in which pieces, and when) is the strict level: it is
seen only through the kit's recorder of ``torch.distributed``'s Python calls, which torch's own DDP (its
C++ reducer) bypasses; the course checks what the communication computes (gradients, trained weights).

Clauses shared by the wrappers (DDPIndividualParameters, DDPBucketed, FSDP):

- Construction wraps an instantiated ``torch.nn.Module``: ``wrapper.module`` is that module (for FSDP
  a strict clause, see FSDP), ``wrapper(*args, **kwargs)`` calls its forward, ``wrapper.parameters()``
  yields the parameters an optimizer must step, in the module's order (for DDP the module's own
  parameter objects). Names in ``wrapper.named_parameters()`` / ``wrapper.state_dict()`` may carry a
  prefix (``module.``, as torch's DDP does); the unprefixed form is ``wrapper.module``'s.
- Construction is a collective: every rank must construct the wrapper.
- (strict) Construction checks that every rank's module has the same parameter names, shapes and
  dtypes and raises ValueError naming the first mismatch (name, shapes, rank) on every rank, instead
  of hanging or silently communicating wrong buffers.
- ``finish_gradient_synchronization()`` is called after ``loss.backward()`` and before the
  optimizer step; when it returns every gradient the optimizer reads is final.
- Gradients are averaged: all-reduce SUM divided by the world size (the mean over ranks of the
  per-rank gradients), so that training on world size N with a per-rank batch of B/N equals one
  process training on the batch of B (within float32 tolerance; bit-identical when N = 1).
- Parameters with ``requires_grad=False`` (frozen) get no gradient: none is created (``.grad`` stays
  None). A parameter reachable under two names (tied weights) is one parameter: its gradient is the
  sum over both uses.
- (strict) The DDP wrappers never communicate a frozen parameter's gradient, and a tied parameter's
  once per backward.
- The ranks run the same model on different data: every rank calls forward, backward and
  ``finish_gradient_synchronization`` the same number of times, and every trainable parameter takes
  part in each backward (as torch's DDP without ``find_unused_parameters``).
- (strict) Dropping the wrapper and its module frees them: hooks left on parameters (which autograd
  keeps out of the garbage collector's sight) do not hold the wrapper, the module or their buffers
  alive.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol

import torch
from torch import Tensor

# This area's components, in the report's order (spec.COMPONENTS is built from them).
__all__ = ["DDPIndividualParameters", "DDPBucketed", "ShardedOptimizer", "FSDP"]


class DDPIndividualParameters(Protocol):
    """DDP that overlaps communication with the backward pass, one all-reduce per parameter (A2 §5.2, §5.3.2).

    - Construction broadcasts every parameter (frozen ones included) and buffer from rank 0, so all
      ranks start from rank 0's values whatever their own initialization.
    - (strict) Each trainable parameter's gradient is all-reduced by one
      ``torch.distributed.all_reduce`` launched asynchronously (``async_op=True``) as soon as that
      gradient is ready during ``backward`` (a post-accumulate-grad hook), not after backward
      returns, so that communication overlaps the rest of the backward.
    - ``finish_gradient_synchronization()`` waits for all of them and divides by the world size.
    """

    module: torch.nn.Module

    def __init__(self, module: torch.nn.Module): ...

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any: ...

    def finish_gradient_synchronization(self) -> None: ...


class DDPBucketed(DDPIndividualParameters, Protocol):
    """DDP with gradients packed into buckets, each all-reduced as one flat buffer once all its gradients are
    ready (A2 2025 handout §2.3.3; A2 §5.3.1 for the flattening).

    - Construction broadcasts from rank 0 as DDPIndividualParameters does.
    - ``bucket_size_mb``: any limit, from smaller than every parameter to larger than all of them,
      gives the averaged gradients.
    - (strict) ``bucket_size_mb``: the largest bucket, in MiB of gradient bytes (2²⁰ bytes); the
      trainable parameters are assigned to buckets in reverse order of ``module.parameters()``
      (roughly the order gradients become ready in backward), a new bucket starting when the next
      parameter would overflow the current one; a parameter larger than the limit gets a bucket of
      its own. ``None`` puts every parameter into one bucket. (Parameters of different dtypes never
      share a bucket: a flat buffer has one dtype.)
    - (strict) Each bucket is communicated as one ``torch.distributed.all_reduce`` of a flat buffer
      of its gradients, launched asynchronously as soon as the last of its gradients is ready (never
      before: readiness follows the autograd graph, not the parameters' order).
    - ``finish_gradient_synchronization()`` waits, averages and copies the results back into each
      parameter's ``.grad``. Works across many steps, with ``zero_grad`` between them, with or
      without ``set_to_none``.
    """

    def __init__(self, module: torch.nn.Module, bucket_size_mb: float | None): ...


class ShardedOptimizer(Protocol):
    """Optimizer-state sharding, a subclass of ``torch.optim.Optimizer`` wrapping any optimizer class (A2 §6).

    - ``ShardedOptimizer(params, optimizer_cls, **kwargs)``: params as for any optimizer (tensors or
      parameter groups with their own hyperparameters; ``kwargs`` are ``optimizer_cls``'s); it calls
      ``torch.optim.Optimizer.__init__``. Every rank passes the same parameters, with equal values
      (nothing is broadcast at construction), and sees the same gradients (after DDP's averaging).
    - Each parameter is owned by exactly one rank, and only its owner keeps optimizer state for it
      (each rank steps ``optimizer_cls`` over the parameters it owns). The shards are balanced: no
      rank owns more than an even split of the elements plus the largest parameter (the reference
      assigns largest first, each to the rank owning the fewest elements so far).
    - ``step(closure=None, **kwargs)`` (a collective: every rank calls it) steps the owned parameters,
      then each owner broadcasts its updated parameters, so that after ``step`` every rank holds
      identical parameters, equal to those of the unsharded ``optimizer_cls`` stepped on the same
      gradients, also with a closure. Hyperparameters changed in ``param_groups`` between
      steps (an LR schedule) take effect at the next step.
    - ``add_param_group(group)`` works during training as well as during construction (every rank
      adding the same group), and shards the new group's parameters by the same rule.
    - ``zero_grad`` clears every parameter's gradient, not only the owned ones.
    - (strict) ``step(closure)`` returns the closure's loss.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], optimizer_cls: type[torch.optim.Optimizer],
                 **kwargs: Any): ...

    def step(self, closure=None, **kwargs: Any): ...

    def add_param_group(self, param_group: dict[str, Any]) -> None: ...

    def zero_grad(self, set_to_none: bool = True) -> None: ...


class FSDP(Protocol):
    """Fully-sharded data parallel: Linear and Embedding weights sharded across ranks (A2 §7).

    - Construction, a collective like the DDP wrappers' (the same-module check, which is strict, then
      every parameter and buffer broadcast from rank 0), shards every ``weight`` of a Linear or
      Embedding submodule (the spec/nn.py classes, and torch.nn's) along dim 0: rank r keeps rows
      ``tensor_split(weight, world_size)[r]`` (the first ``rows % world_size`` ranks one row more than
      the others; a rank holds no rows when rows < world_size) as a float32 master Parameter, in the
      layer under the same name. A weight tied between layers is sharded once. Every other parameter
      (norm gains, biases) stays whole and replicated.
    - (strict) Linear and Embedding by what they are, not by their class: every submodule without
      submodules of its own whose ``weight`` is a matrix (2-D) is sharded, so that a model built from
      its author's own layer classes (subclasses of ``torch.nn.Module`` alone, as a course participant's
      are) is sharded, and its ``compute_dtype`` honoured, as one of torch.nn layers. (The course wraps
      its own model, whose classes its FSDP knows.)
    - ``wrapper.parameters()`` yields the module's parameters in the module's order, each sharded
      weight as this rank's shard, so any optimizer (the course's AdamW included) steps the shards.
      Full weights exist only inside the wrapper's forward and backward: call the wrapper, not
      ``wrapper.module``.
    - (strict) Right after construction, ``wrapper.parameters()`` yields each sharded weight as exactly
      this rank's float32 rows ``tensor_split(weight, world_size)[r]`` of rank 0's weight, and every
      other parameter whole; ``wrapper.module`` is the module passed in. (The course reads parameters
      only through its gather of the full parameters.)
    - Forward: a weight is all-gathered before it is used, with at most two gathers outstanding
      (started and not yet used: the next layers' weights travel while this one computes); the wrapper
      keeps no full weight after its use, so that between layers at most two are alive, and none is
      kept for backward (autograd would save ``W`` of ``x @ W.T``).
    - Backward all-gathers a weight again where its gradient needs it, and reduce-scatters the full
      weight's gradient: the shard's ``.grad`` gets its rows of the sum over ranks divided by the world
      size, in float32. Collectives move equal sizes, so uneven pieces travel padded to the largest;
      where the backend lacks reduce-scatter (gloo in older torch), an all-reduce of which each rank
      keeps its rows gives the same sums. ``finish_gradient_synchronization()`` all-reduces and averages
      the replicated parameters' gradients. Frozen weights are gathered for the forward but get no
      gradient.
    - (strict) After ``finish_gradient_synchronization()``, each shard's ``.grad`` holds exactly its
      rows of the averaged gradient, the replicated parameters' gradients are bit-identical on every
      rank, and a frozen weight's ``.grad`` stays None. (The course checks the trained result, not the
      ``.grad``.)
    - ``compute_dtype`` (None = the weight's own dtype): shards are cast to it before they are
      communicated, so gathers, compute and the gradients' reduce-scatter run in it; master weights,
      their gradients, the optimizer state and its update stay float32. Replicated parameters keep
      their dtype.
    - (strict) Bit-identical forward, in float32 (compute_dtype None): each rank's forward output
      equals, bit for bit, the unwrapped module's on the same input holding the full weights (gathering
      moves bits exactly, and the module's own code computes). (The course compares trained weights,
      within tolerance.)
    - In float32 (compute_dtype None), at world size 1 training equals the unwrapped module's bit for
      bit. At N ranks, rank r training on rows ``tensor_split(batch, N)[r]`` equals one process on
      the whole batch within float32 tolerance only: the reduction sums in another order.
    - ``full_state_dict()`` (a collective) returns, on every rank, the module's state dict with its keys
      in its order (both keys of a tied weight), every floating tensor whole and float32: the
      checkpoint form, loadable into the unwrapped module.
    - (strict) No warnings are raised in construction, forward, backward, synchronization, step or
      ``full_state_dict``.
    """

    module: torch.nn.Module

    def __init__(self, module: torch.nn.Module, compute_dtype: torch.dtype | None = None): ...

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any: ...

    def finish_gradient_synchronization(self) -> None: ...

    def full_state_dict(self) -> dict[str, Tensor]: ...
