"""Distributed data parallel training that overlaps gradient communication with the backward pass.

Handout A2 §5.2 (naïve DDP: broadcast, all-reduce, average), §5.3.2 (one asynchronous all-reduce per
parameter, launched from a post-accumulate-grad hook) and the 2025 handout's §2.3.3 (gradients packed into
buckets, each all-reduced as one flat buffer once all of its gradients are ready). The normative text is
``spec/distributed.py``. Both wrappers run inside an initialized default process group.
"""

from __future__ import annotations

import weakref

import torch
import torch.distributed as dist
from torch import Tensor, nn


def check_same_parameters(module: nn.Module) -> None:
    """Raise ValueError on every rank when the ranks' modules differ in a parameter's or buffer's name, shape or dtype.

    Without it, broadcasting and all-reducing mismatched tensors hangs or silently mixes unrelated values.
    """
    mine = [(name, tuple(t.shape), str(t.dtype)) for name, t in (*module.named_parameters(), *module.named_buffers())]
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)  # every rank sees every list, so every rank raises the same error
    for rank, theirs in enumerate(everyone[1:], start=1):
        if theirs == everyone[0]:
            continue
        for ours, other in zip(everyone[0], theirs):
            if ours != other:
                raise ValueError(f"the ranks' modules differ: rank 0 has {ours[0]} {ours[1]} {ours[2]}, rank {rank} "
                                 f"has {other[0]} {other[1]} {other[2]}; every rank must wrap the same model")
        longer, shorter = (0, rank) if len(everyone[0]) > len(theirs) else (rank, 0)
        extra = everyone[longer][len(everyone[shorter])]
        raise ValueError(f"the ranks' modules differ: rank {longer} has {extra[0]} {extra[1]}, which rank {shorter} "
                         f"lacks; every rank must wrap the same model")


@torch.no_grad()
def broadcast_from_rank_0(module: nn.Module) -> None:
    """Every parameter (frozen ones too) and buffer takes rank 0's value: all replicas start identical (A2 §5.2)."""
    for tensor in (*module.parameters(), *module.buffers()):
        dist.broadcast(tensor, src=0)


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters whose gradients are averaged: ``parameters()`` lists a tied parameter once; frozen ones left
    out."""
    return [p for p in module.parameters() if p.requires_grad]


def weakly(method):
    """``method`` (a wrapper's bound method) as a gradient hook that holds its wrapper weakly.

    A hook lives on the parameter, out of the garbage collector's sight (autograd keeps it in C++): holding the
    wrapper strongly would keep the wrapper, its module and every gradient buffer alive after the user drops them
    (7.8 GB of an XL model per dropped wrapper, measured on an H100). Once the wrapper is gone the hook does nothing.
    """
    owner, function = weakref.ref(method.__self__), method.__func__

    def hook(parameter: nn.Parameter) -> None:
        wrapper = owner()
        if wrapper is not None:
            function(wrapper, parameter)

    return hook


class DDPIndividualParameters(nn.Module):
    """One asynchronous all-reduce per parameter, launched as soon as its gradient is accumulated (A2 §5.3.2)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        self.world_size = dist.get_world_size()
        check_same_parameters(module)
        broadcast_from_rank_0(module)
        self.pending: list[tuple[nn.Parameter, dist.Work]] = []
        for parameter in trainable_parameters(module):
            # Fires once per backward, after the gradient is fully accumulated (a tied weight used twice included),
            # while autograd goes on with earlier layers: communication overlaps the rest of the backward.
            parameter.register_post_accumulate_grad_hook(weakly(self._all_reduce))

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)

    def _all_reduce(self, parameter: nn.Parameter) -> None:
        self.pending.append((parameter, dist.all_reduce(parameter.grad, async_op=True)))

    def finish_gradient_synchronization(self) -> None:
        """Wait for every all-reduce of this backward; the sums become means over the ranks."""
        for parameter, work in self.pending:
            work.wait()
            parameter.grad.div_(self.world_size)
        self.pending.clear()


class Bucket:
    """Parameters whose gradients travel together in one flat buffer, and how many are still to come."""

    def __init__(self, parameters: list[nn.Parameter]):
        self.parameters = parameters
        self.offsets: dict[nn.Parameter, int] = {}
        numel = 0
        for parameter in parameters:
            self.offsets[parameter] = numel
            numel += parameter.numel()
        first = parameters[0]
        self.buffer = torch.zeros(numel, dtype=first.dtype, device=first.device)  # (numel,)
        self.waiting = len(parameters)
        self.work: dist.Work | None = None

    def slice(self, parameter: nn.Parameter) -> Tensor:
        start = self.offsets[parameter]
        return self.buffer[start:start + parameter.numel()].view_as(parameter)  # (numel,) -> parameter's shape


def assign_buckets(parameters: list[nn.Parameter], bucket_size_mb: float | None) -> list[list[nn.Parameter]]:
    """Parameters in reverse order (the order backward produces their gradients), cut into buckets of at most
    ``bucket_size_mb`` MiB; a parameter larger than that alone; ``None``: one bucket. A flat buffer has one dtype,
    so a change of dtype also starts a new bucket."""
    limit = None if bucket_size_mb is None else bucket_size_mb * 2**20  # bytes
    buckets: list[list[nn.Parameter]] = []
    size = 0
    for parameter in reversed(parameters):
        nbytes = parameter.numel() * parameter.element_size()
        overflows = limit is not None and size + nbytes > limit
        if not buckets or (overflows and buckets[-1]) or buckets[-1][0].dtype != parameter.dtype:
            buckets.append([])
            size = 0
        buckets[-1].append(parameter)
        size += nbytes
    return buckets


class DDPBucketed(nn.Module):
    """DDP with gradients packed into buckets: fewer, larger all-reduces, each still overlapping the backward
    (2025 handout §2.3.3)."""

    def __init__(self, module: nn.Module, bucket_size_mb: float | None):
        super().__init__()
        self.module = module
        self.world_size = dist.get_world_size()
        check_same_parameters(module)
        broadcast_from_rank_0(module)
        self.buckets = [Bucket(params) for params in assign_buckets(trainable_parameters(module), bucket_size_mb)]
        self.bucket_of = {parameter: bucket for bucket in self.buckets for parameter in bucket.parameters}
        for parameter in self.bucket_of:
            parameter.register_post_accumulate_grad_hook(weakly(self._gradient_ready))

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)

    def _gradient_ready(self, parameter: nn.Parameter) -> None:
        bucket = self.bucket_of[parameter]
        bucket.slice(parameter).copy_(parameter.grad)
        bucket.waiting -= 1
        # Only when the last of its gradients is in: readiness follows the autograd graph, which need not follow
        # the parameters' order, so no single parameter can stand for "the bucket is full".
        if bucket.waiting == 0:
            bucket.work = dist.all_reduce(bucket.buffer, async_op=True)

    def finish_gradient_synchronization(self) -> None:
        """Wait for each bucket's all-reduce, average, and copy the means back into each parameter's ``.grad``."""
        for bucket in self.buckets:
            if bucket.work is None:
                raise RuntimeError(f"a bucket was never all-reduced: {bucket.waiting} of its {len(bucket.parameters)} "
                                   f"parameters got no gradient in this backward; every trainable parameter must "
                                   f"take part in the loss")
            bucket.work.wait()
            bucket.buffer.div_(self.world_size)
            for parameter in bucket.parameters:
                parameter.grad.copy_(bucket.slice(parameter))
            bucket.waiting, bucket.work = len(bucket.parameters), None  # ready for the next backward
