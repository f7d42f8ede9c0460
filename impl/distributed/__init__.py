"""Distributed data-parallel training (A2 §5–§7; spec/distributed.py): DDP, optimizer-state sharding, FSDP."""

from impl.distributed.ddp import DDPBucketed, DDPIndividualParameters
from impl.distributed.fsdp import FSDP
from impl.distributed.sharded_optimizer import ShardedOptimizer

__all__ = ["DDPIndividualParameters", "DDPBucketed", "ShardedOptimizer", "FSDP"]
