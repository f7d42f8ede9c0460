"""What bench/distributed/benchmark.py compares: the DDP variants and the sharded setups, each a function of a
fresh model.

Each takes the model (on its device) and returns (what to call, its optimizer, the gradient synchronization
to run after backward). Naive and flat DDP are the handout's minimal DDP (A2 §5.2, §5.3.1), written here for
the benchmark; "ours" are the reference's DDPIndividualParameters, DDPBucketed, ShardedOptimizer and FSDP
(spec/distributed.py), "yours" the same components of the implementation under test (``--impl``), which
raise ComponentMissing where it lacks them; torch's are DistributedDataParallel, ZeroRedundancyOptimizer and
FSDP2's fully_shard, with their defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

import impl
from bench.common import yours
from impl.train import AdamW

Setup = tuple[nn.Module, torch.optim.Optimizer, Callable[[], None]]  # what to call, its optimizer, grad sync


def nothing() -> None:
    """Gradients are final after backward: one process, or torch's wrappers (they wait inside backward)."""


@torch.no_grad()
def broadcast_from_rank_0(model: nn.Module) -> None:
    for tensor in (*model.parameters(), *model.buffers()):
        dist.broadcast(tensor, src=0)


def no_ddp(model: nn.Module, device: torch.device) -> Setup:
    return model, AdamW(model.parameters()), nothing


def naive(model: nn.Module, device: torch.device) -> Setup:
    """A2 §5.2's minimal DDP: after backward, one blocking all-reduce per parameter."""
    broadcast_from_rank_0(model)
    params, world_size = list(model.parameters()), dist.get_world_size()

    def sync_gradients() -> None:
        for p in params:
            dist.all_reduce(p.grad)
            p.grad.div_(world_size)

    return model, AdamW(params), sync_gradients


def flat(model: nn.Module, device: torch.device) -> Setup:
    """A2 §5.3.1: after backward, one all-reduce of every gradient concatenated."""
    broadcast_from_rank_0(model)
    params, world_size = list(model.parameters()), dist.get_world_size()

    def sync_gradients() -> None:
        grads = [p.grad for p in params]
        buffer = _flatten_dense_tensors(grads)  # (Σ numel,)
        dist.all_reduce(buffer)
        buffer.div_(world_size)
        for grad, mean in zip(grads, _unflatten_dense_tensors(buffer, grads)):
            grad.copy_(mean)

    return model, AdamW(params), sync_gradients


def individual(bundle, model: nn.Module, device: torch.device) -> Setup:
    wrapper = bundle.DDPIndividualParameters(model)
    return wrapper, AdamW(wrapper.parameters()), wrapper.finish_gradient_synchronization


def bucketed(bundle, bucket_mb: float, model: nn.Module, device: torch.device) -> Setup:
    wrapper = bundle.DDPBucketed(model, bucket_mb)
    return wrapper, AdamW(wrapper.parameters()), wrapper.finish_gradient_synchronization


def wrap_torch_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """torch's DistributedDataParallel with its defaults (25 MiB buckets, buffers broadcast each forward)."""
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def torch_ddp(model: nn.Module, device: torch.device, optimizer_cls: type = AdamW) -> Setup:
    wrapper = wrap_torch_ddp(model, device)
    return wrapper, optimizer_cls(wrapper.parameters()), nothing


def sharded(bundle, optimizer_cls: type, ddp: str, model: nn.Module, device: torch.device) -> Setup:
    """``bundle``'s ShardedOptimizer over ``optimizer_cls``, on torch's DDP or on the bundle's DDPBucketed (25 MB
    like torch's)."""
    sharded_optimizer = bundle.ShardedOptimizer  # missing: before any wrapping
    wrapper = wrap_torch_ddp(model, device) if ddp == "torch" else bundle.DDPBucketed(model, 25)
    sync_gradients = getattr(wrapper, "finish_gradient_synchronization", nothing)
    return wrapper, sharded_optimizer(wrapper.parameters(), optimizer_cls), sync_gradients


def zero(model: nn.Module, device: torch.device) -> Setup:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    wrapper = wrap_torch_ddp(model, device)
    return wrapper, ZeroRedundancyOptimizer(wrapper.parameters(), optimizer_class=torch.optim.AdamW), nothing


def fsdp(bundle, optimizer_cls: type, model: nn.Module, device: torch.device) -> Setup:
    wrapper = bundle.FSDP(model)
    return wrapper, optimizer_cls(wrapper.parameters()), wrapper.finish_gradient_synchronization


def fsdp2(model: nn.Module, device: torch.device) -> Setup:
    """torch's fully_shard on every block, then on the root (its documented use), fp32 throughout."""
    from torch.distributed.fsdp import fully_shard

    for layer in model.layers:
        fully_shard(layer)
    fully_shard(model)
    return model, torch.optim.AdamW(model.parameters()), nothing


def ddp_variants(bucket_mbs: list[float], world_size: int, tested=None) -> dict[str, Callable[..., Setup]]:
    """The DDP table's rows; ``tested``: the implementation under test (None: the reference only), its rows
    before ours."""
    variants = {"no DDP (one process)": no_ddp} if world_size == 1 else {}
    variants |= {"naive: all-reduce per parameter after backward": naive,
                 "flat: one all-reduce of all gradients after backward": flat}
    for prefix, bundle in ([(yours(tested, ""), tested)] if tested is not None else []) + [("ours: ", impl)]:
        variants[f"{prefix}DDPIndividualParameters (overlapped)"] = partial(individual, bundle)
        variants |= {f"{prefix}DDPBucketed {mb:g} MB": partial(bucketed, bundle, mb) for mb in bucket_mbs}
    return variants | {"torch DDP (DistributedDataParallel, defaults)": torch_ddp}


ZERO = "torch: ZeroRedundancyOptimizer + torch DDP"
FSDP2 = "torch: FSDP2 (fully_shard)"


def sharding(tested=None) -> dict[str, tuple[Callable[..., Setup], str, str]]:
    """The memory table's rows: (setup, optimizer it steps, the torch peer it is measured against or "" for none).
    ``tested``: the implementation under test (None: the reference only): its ShardedOptimizer and FSDP, over
    torch.optim.AdamW, before ours."""
    rows = {"unsharded: torch DDP": (partial(torch_ddp, optimizer_cls=torch.optim.AdamW), "torch.optim.AdamW", "")}
    if tested is not None:
        rows |= {yours(tested, "ShardedOptimizer + torch DDP"): (
                     partial(sharded, tested, torch.optim.AdamW, "torch"), "torch.optim.AdamW", ZERO),
                 yours(tested, "FSDP"): (partial(fsdp, tested, torch.optim.AdamW), "torch.optim.AdamW", FSDP2)}
    return rows | {
        "ours: ShardedOptimizer + torch DDP": (partial(sharded, impl, torch.optim.AdamW, "torch"), "torch.optim.AdamW",
                                               ZERO),
        ZERO: (zero, "torch.optim.AdamW", ""),
        "ours: ShardedOptimizer + DDPBucketed 25 MB": (partial(sharded, impl, AdamW, "ours"), "ours (impl.train.AdamW)",
                                                       ZERO),
        "ours: FSDP": (partial(fsdp, impl, torch.optim.AdamW), "torch.optim.AdamW", FSDP2),
        FSDP2: (fsdp2, "torch.optim.AdamW", ""),
        "ours: FSDP, our AdamW": (partial(fsdp, impl, AdamW), "ours (impl.train.AdamW)", FSDP2),
    }
