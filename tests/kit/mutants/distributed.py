"""The distributed components' mutants (spec/distributed.py): DDP, the sharded optimizer, FSDP.

DDP and sharded-optimizer mutants subclass the reference (impl/distributed/ddp.py, impl/distributed/sharded_optimizer.py) and override
one method or swap one helper for the call. They run in the ranks' processes: the suite hands the mutant's label
to each rank, which reloads it (tests/harness/multiprocess.py implementation).
"""

from __future__ import annotations

from unittest import mock

import torch

import impl as reference
import impl.distributed.ddp as reference_ddp
import impl.distributed.fsdp as reference_fsdp
from tests.kit.mutants.common import Mutant


class DDPSumWithoutAverage(reference.DDPIndividualParameters):
    def finish_gradient_synchronization(self):
        for _, work in self.pending:
            work.wait()  # the sum over ranks stays: N times the gradient of the global batch
        self.pending.clear()


class DDPNoBroadcast(reference.DDPIndividualParameters):
    def __init__(self, module):
        with mock.patch.object(reference_ddp, "broadcast_from_rank_0", lambda module: None):
            super().__init__(module)


class DDPAllReduceAfterBackward(reference.DDPIndividualParameters):
    """The naïve DDP of A2 §5.2: the hooks only note the parameter; everything is sent once backward is over."""

    def _all_reduce(self, parameter):
        self.pending.append((parameter, None))

    def finish_gradient_synchronization(self):
        self.pending = [(p, torch.distributed.all_reduce(p.grad, async_op=True)) for p, _ in self.pending]
        super().finish_gradient_synchronization()


class DDPFrozenGradients(reference.DDPIndividualParameters):
    """Frozen parameters get zero gradients, all-reduced with the others."""

    def finish_gradient_synchronization(self):
        for parameter in self.module.parameters():
            if not parameter.requires_grad:
                parameter.grad = torch.zeros_like(parameter)
                self.pending.append((parameter, torch.distributed.all_reduce(parameter.grad, async_op=True)))
        super().finish_gradient_synchronization()


class DDPTiedTwice(reference.DDPIndividualParameters):
    """Hooks on named_parameters(remove_duplicate=False): a tied weight all-reduced (and divided) twice, so its
    values come out right and only the traffic shows it."""

    def __init__(self, module):
        tied = lambda module: [p for _, p in module.named_parameters(remove_duplicate=False) if p.requires_grad]
        with mock.patch.object(reference_ddp, "trainable_parameters", tied):
            super().__init__(module)


class DDPUnchecked(reference.DDPIndividualParameters):
    def __init__(self, module):
        with mock.patch.object(reference_ddp, "check_same_parameters", lambda module: None):
            super().__init__(module)


class BucketedSumWithoutAverage(reference.DDPBucketed):
    def finish_gradient_synchronization(self):
        with mock.patch.object(self, "world_size", 1):
            super().finish_gradient_synchronization()


class BucketedFlushedEarly(reference.DDPBucketed):
    """A bucket is all-reduced when its last parameter in reverse order is ready, taken as "the bucket is full";
    readiness follows the graph, not the registration order."""

    def _gradient_ready(self, parameter):
        bucket = self.bucket_of[parameter]
        bucket.slice(parameter).copy_(parameter.grad)
        bucket.waiting -= 1
        if parameter is bucket.parameters[-1]:
            bucket.work = torch.distributed.all_reduce(bucket.buffer, async_op=True)


class BucketedForwardOrder(reference.DDPBucketed):
    def __init__(self, module, bucket_size_mb):
        assign = reference_ddp.assign_buckets
        forward = lambda parameters, size: assign(parameters[::-1], size)  # assign reverses them back
        with mock.patch.object(reference_ddp, "assign_buckets", forward):
            super().__init__(module, bucket_size_mb)


class BucketedOneBucket(reference.DDPBucketed):
    def __init__(self, module, bucket_size_mb):
        super().__init__(module, None)


class BucketedNotReset(reference.DDPBucketed):
    """The count of gradients still to come is not reset after a step: from the second backward on, no bucket
    ever fills up."""

    def finish_gradient_synchronization(self):
        super().finish_gradient_synchronization()
        for bucket in self.buckets:
            bucket.waiting = 0


class ShardedNoBroadcast(reference.ShardedOptimizer):
    def broadcast_parameters(self):
        pass  # each rank's shard moves; the others' stay behind


class ShardedReplicatedState(ShardedNoBroadcast):
    """Every rank steps every parameter: the same results, but the whole state on each rank."""

    def add_param_group(self, param_group):
        torch.optim.Optimizer.add_param_group(self, param_group)
        if self.local is None:
            self.local = self.optimizer_cls([dict(self.param_groups[-1])], **self.optimizer_kwargs)
            self.state = self.local.state
        else:
            self.local.add_param_group(dict(self.param_groups[-1]))


class ShardedLateGroupIgnored(reference.ShardedOptimizer):
    """A group added after construction is registered (owned by rank 0) but never reaches the local optimizer."""

    def __init__(self, params, optimizer_cls, **kwargs):
        super().__init__(params, optimizer_cls, **kwargs)
        self.constructed = True

    def add_param_group(self, param_group):
        if not getattr(self, "constructed", False):
            return super().add_param_group(param_group)
        torch.optim.Optimizer.add_param_group(self, param_group)
        for parameter in self.param_groups[-1]["params"]:
            self.owner[parameter] = 0
        self.local.add_param_group({**self.param_groups[-1], "params": []})


class ShardedStaleHyperparameters(reference.ShardedOptimizer):
    def sync_hyperparameters(self):
        pass  # param_groups changes (an LR schedule) never reach the local optimizer


class ShardedZeroGradOwnedOnly(reference.ShardedOptimizer):
    def zero_grad(self, set_to_none: bool = True):
        self.local.zero_grad(set_to_none)


# FSDP mutants subclass the reference (impl/distributed/fsdp.py) and override one method or patch one constant for the call;
# like the DDP ones they run in the ranks' processes.


class FSDPReplicatedSummed(reference.FSDP):
    def finish_gradient_synchronization(self):
        with mock.patch.object(self, "world_size", 1):  # the replicated gradients' sum is not divided
            super().finish_gradient_synchronization()


class FSDPReplicatedLocal(reference.FSDP):
    def finish_gradient_synchronization(self):
        pass  # replicated parameters keep each rank's own gradient: the replicas drift apart


class FSDPGradientSummed(reference.FSDP):
    def reduce_scatter(self, index, grad_full):
        return super().reduce_scatter(index, grad_full) * self.world_size


class FSDPWrongShard(reference.FSDP):
    """Rank r's shard gets the summed gradient rows of rank (r + 1) mod N (cut or zero-padded to its own size)."""

    def reduce_scatter(self, index, grad_full):
        # The all-reduce path, told it is the next rank: it keeps that rank's chunk.
        with mock.patch.object(self, "flat", False), \
                mock.patch.object(self, "rank", (self.rank + 1) % self.world_size):
            theirs = super().reduce_scatter(index, grad_full)
        mine = theirs.new_zeros(self.shards[index].param.shape)
        rows = min(len(mine), len(theirs))
        mine[:rows] = theirs[:rows]
        return mine


class FSDPKeepsGathered(reference.FSDP):
    def pack(self, tensor):
        return tensor  # autograd saves every gathered weight until backward


class FSDPPrefetchAll(reference.FSDP):
    def take(self, index):
        with mock.patch.object(reference_fsdp, "PREFETCH", len(self.shards)):
            return super().take(index)


class FSDPCastAfterGather(reference.FSDP):
    """Gathers the float32 master rows, casts the full weight afterwards: twice the bytes on the wire in bf16."""

    def take(self, index):
        with mock.patch.object(self, "compute_dtype", None):
            full = super().take(index)
        return full.to(self.dtype_of(index))


class FSDPNoBroadcast(reference.FSDP):
    def __init__(self, module, compute_dtype=None):
        with mock.patch.object(reference_fsdp, "broadcast_from_rank_0", lambda module: None):
            super().__init__(module, compute_dtype)


class FSDPUnchecked(reference.FSDP):
    def __init__(self, module, compute_dtype=None):
        with mock.patch.object(reference_fsdp, "check_same_parameters", lambda module: None):
            super().__init__(module, compute_dtype)


class FSDPFrozenTrained(reference.FSDP):
    def make_shard(self, weight):
        shard = super().make_shard(weight)
        shard.param.requires_grad_(True)  # requires_grad not carried over: frozen weights get gradients
        return shard


class FSDPKnownClassesOnly(reference.FSDP):
    """Shards the weights of impl.nn's and torch.nn's Linear and Embedding only: a model of its author's own layer
    classes stays whole on every rank, its compute_dtype ignored."""

    def __init__(self, module, compute_dtype=None):
        known = (reference.Linear, reference.Embedding, torch.nn.Linear, torch.nn.Embedding)
        with mock.patch.object(reference_fsdp, "shardable", lambda layer: isinstance(layer, known)
                               and layer._parameters.get("weight") is not None):
            super().__init__(module, compute_dtype)


class FSDPStateOnRank0(reference.FSDP):
    def full_state_dict(self):
        state = super().full_state_dict()  # every rank takes part in the gathers
        return state if self.rank == 0 else {}


MUTANTS: list[Mutant] = [
    Mutant("ddp_sum_without_average", "DDPIndividualParameters", "gradients all-reduced with SUM and not divided "
           "by the world size", DDPSumWithoutAverage),
    Mutant("ddp_no_broadcast", "DDPIndividualParameters", "no broadcast from rank 0 at construction: ranks keep "
           "their own initial values", DDPNoBroadcast),
    # strict: a communication pattern, seen only through the kit's recorder (torch's DDP bypasses it)
    Mutant("ddp_all_reduce_after_backward", "DDPIndividualParameters", "all-reduces launched in "
           "finish_gradient_synchronization, after backward: no overlap", DDPAllReduceAfterBackward, level="strict"),
    Mutant("ddp_frozen_gradients", "DDPIndividualParameters", "frozen parameters get zero gradients, all-reduced",
           DDPFrozenGradients),
    Mutant("ddp_tied_reduced_twice", "DDPIndividualParameters", "a tied parameter hooked under both names: "
           "all-reduced twice per backward", DDPTiedTwice),
    # strict: checking the ranks' modules is the kit's convention
    Mutant("ddp_unchecked_shapes", "DDPIndividualParameters", "no check that the ranks' modules match",
           DDPUnchecked, level="strict"),
    Mutant("ddp_bucketed_sum_without_average", "DDPBucketed", "buckets all-reduced with SUM and not divided by the "
           "world size", BucketedSumWithoutAverage),
    # strict: a race. The course-level averages are wrong only when gloo's all-reduce thread reads the bucket before
    # its last gradients land, which a loaded machine reverses (seen under a stressed CI run); the recorder's
    # "no bucket before ready" check sees it every time.
    Mutant("ddp_bucketed_flushed_early", "DDPBucketed", "a bucket sent when its last parameter in reverse order is "
           "ready, before all of its gradients are", BucketedFlushedEarly, level="strict"),
    # strict: a communication pattern, seen only through the kit's recorder (torch's DDP bypasses it)
    Mutant("ddp_bucketed_forward_order", "DDPBucketed", "buckets filled in the order of module.parameters(), not "
           "reverse", BucketedForwardOrder, level="strict"),
    # strict: a communication pattern, seen only through the kit's recorder (torch's DDP bypasses it)
    Mutant("ddp_bucketed_one_bucket", "DDPBucketed", "bucket_size_mb ignored: always one bucket", BucketedOneBucket,
           level="strict"),
    Mutant("ddp_bucketed_not_reset", "DDPBucketed", "the per-bucket count of pending gradients not reset after a "
           "step", BucketedNotReset),
    Mutant("sharded_no_broadcast", "ShardedOptimizer", "owners step their shard but never broadcast it",
           ShardedNoBroadcast),
    Mutant("sharded_replicated_state", "ShardedOptimizer", "every rank steps every parameter: optimizer state not "
           "sharded", ShardedReplicatedState),
    Mutant("sharded_late_group_ignored", "ShardedOptimizer", "a group added after construction never reaches the "
           "local optimizer", ShardedLateGroupIgnored),
    Mutant("sharded_stale_hyperparameters", "ShardedOptimizer", "param_groups changes (an LR schedule) never reach "
           "the local optimizer", ShardedStaleHyperparameters),
    Mutant("sharded_zero_grad_owned_only", "ShardedOptimizer", "zero_grad clears only the owned parameters' "
           "gradients", ShardedZeroGradOwnedOnly),
    Mutant("fsdp_replicated_summed", "FSDP", "replicated parameters' gradients all-reduced with SUM, not divided "
           "by the world size", FSDPReplicatedSummed),
    Mutant("fsdp_replicated_not_communicated", "FSDP", "replicated parameters' gradients never all-reduced",
           FSDPReplicatedLocal),
    Mutant("fsdp_gradient_summed", "FSDP", "shards' gradients reduce-scattered with SUM, not divided by the world "
           "size", FSDPGradientSummed),
    Mutant("fsdp_wrong_shard", "FSDP", "rank r's shard gets the gradient rows of rank (r + 1) mod N", FSDPWrongShard),
    Mutant("fsdp_keeps_gathered", "FSDP", "gathered weights saved by autograd until backward instead of gathered "
           "again", FSDPKeepsGathered),
    Mutant("fsdp_prefetch_all", "FSDP", "no prefetch limit: every weight gathered at the first layer",
           FSDPPrefetchAll),
    Mutant("fsdp_cast_after_gather", "FSDP", "compute_dtype applied after the all-gather: float32 on the wire",
           FSDPCastAfterGather),
    Mutant("fsdp_no_broadcast", "FSDP", "no broadcast from rank 0: each rank's shard cut from its own initial "
           "weights", FSDPNoBroadcast),
    # strict: checking the ranks' modules is the kit's convention
    Mutant("fsdp_unchecked_shapes", "FSDP", "no check that the ranks' modules match", FSDPUnchecked, level="strict"),
    Mutant("fsdp_frozen_trained", "FSDP", "shards of frozen weights require grad: they get gradients and are "
           "trained", FSDPFrozenTrained),
    # strict: the course wraps its own model, whose classes its FSDP knows
    Mutant("fsdp_known_classes_only", "FSDP", "only impl.nn's and torch.nn's Linear and Embedding sharded: a model "
           "of its own layer classes stays whole, compute_dtype ignored", FSDPKnownClassesOnly, level="strict"),
    Mutant("fsdp_state_on_rank_0_only", "FSDP", "full_state_dict returns the state on rank 0 and {} elsewhere",
           FSDPStateOnRank0),
]
