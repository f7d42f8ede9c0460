"""Optimizer-state sharding: each rank keeps the optimizer state of its own share of the parameters (A2 §6).

Every rank still holds every parameter and computes every gradient (use it with DDP); only the optimizer's
state (AdamW's two moments: twice the model's size) is split. Each parameter has one owner; the owner steps
it with the wrapped optimizer and broadcasts the result. The normative text is ``spec/distributed.py``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


class ShardedOptimizer(torch.optim.Optimizer):
    """``optimizer_cls`` over this rank's share of ``params``, then a broadcast of every parameter from its owner."""

    def __init__(self, params, optimizer_cls: type[torch.optim.Optimizer], **kwargs: Any):
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.optimizer_cls, self.optimizer_kwargs = optimizer_cls, kwargs
        self.owner: dict[torch.Tensor, int] = {}
        self.load = [0] * self.world_size  # elements owned by each rank so far
        self.local: torch.optim.Optimizer | None = None  # built by the first add_param_group
        # The base class validates the groups and calls add_param_group for each (the handout asks for that).
        super().__init__(params, defaults=kwargs)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Register the group (here and, for the owned parameters, in the local optimizer); works mid-training."""
        super().add_param_group(param_group)  # checks duplicates and fills the defaults
        group = self.param_groups[-1]
        # Largest first, each to the least-loaded rank: shards end up within one parameter of even.
        # sorted is stable and every rank sees the same groups in the same order, so all ranks agree on the owners.
        for parameter in sorted(group["params"], key=lambda p: -p.numel()):
            owner = min(range(self.world_size), key=self.load.__getitem__)
            self.owner[parameter] = owner
            self.load[owner] += parameter.numel()
        # The local group mirrors this one (same index, same hyperparameters), possibly with no parameters:
        # a rank that owns nothing of a group still keeps the indices aligned.
        local = {**group, "params": [p for p in group["params"] if self.owner[p] == self.rank]}
        if self.local is None:
            self.local = self.optimizer_cls([local], **self.optimizer_kwargs)
            self.state = self.local.state  # optimizer.state shows what this rank holds: its shard's state only
        else:
            self.local.add_param_group(local)

    def step(self, closure=None, **kwargs: Any):
        """Step the owned parameters, then every owner broadcasts its updated parameters to the other ranks."""
        self.sync_hyperparameters()
        loss = self.local.step(closure, **kwargs)
        self.broadcast_parameters()
        return loss

    def sync_hyperparameters(self) -> None:
        """Hyperparameters changed on this optimizer's groups since the last step (an LR schedule) reach the local
        optimizer."""
        for group, local in zip(self.param_groups, self.local.param_groups):
            local.update({key: value for key, value in group.items() if key != "params"})

    @torch.no_grad()
    def broadcast_parameters(self) -> None:
        # Every rank walks the same groups in the same order: the broadcasts pair up. All in flight at once.
        works = [dist.broadcast(p, src=self.owner[p], async_op=True)
                 for group in self.param_groups for p in group["params"]]
        for work in works:
            work.wait()
