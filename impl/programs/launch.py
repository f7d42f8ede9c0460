"""Data-parallel training under torchrun for the ``train`` program (A2 §5–§7): process group, wrappers, full checkpoints.

``TrainConfig.parallel`` chooses how the ranks share the work:

    none               one process, no process group (the default)
    ddp                DDPIndividualParameters: one asynchronous all-reduce per gradient, overlapping backward
    ddp_bucketed       DDPBucketed(bucket_size_mb): gradients all-reduced in flat buckets
    sharded_optimizer  DDPBucketed gradients + ShardedOptimizer(AdamW): each rank keeps ~1/N of AdamW's moments
    fsdp               FSDP: Linear and Embedding weights sharded by rows; AdamW steps each rank's shards

torchrun starts the processes and sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; the
process group is gloo on a CPU and NCCL on CUDA, each rank on ``cuda:LOCAL_RANK``. Every rank draws the same
global batch (one sampler, same seed, same state) and trains on its contiguous ``batch_size / world_size``
rows, so the averaged gradients are one process's on the whole batch: the same run, within float32 rounding.

Only rank 0 writes files, through ``on_rank_0``, which broadcasts rank 0's outcome: the other ranks wait for
it (nobody races ahead) and fail with it (nobody hangs on a rank that stopped). Collectives time out after
``TrainConfig.dist_timeout_minutes``, so that a rank lost on another node ends the job instead of hanging it.

Checkpoints hold the single-process form whatever the mode: the unwrapped model's full state dict (FSDP's
gathered by ``full_state_dict``) and the optimizer state one AdamW over all the parameters would have (the
sharded optimizer's per-rank states and FSDP's per-rank rows of the moments gathered to rank 0 and merged).
So any checkpoint resumes in one process, or under torchrun with any world size and any mode: on loading,
each rank takes the share of the optimizer state its mode and rank keep.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import Tensor, nn

from impl.distributed.ddp import DDPBucketed, DDPIndividualParameters
from impl.distributed.fsdp import FSDP
from impl.distributed.sharded_optimizer import ShardedOptimizer
from impl.programs.config import PARALLEL_CHOICES
from impl.train import clip_gradients



class LaunchError(ValueError):
    """A parallel setting that does not fit how the program was launched."""


def torchrun_env() -> tuple[int, int, int] | None:
    """(rank, local rank, world size) as torchrun sets them; None when the program was not launched by it."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"])


def exit_rank(code: int) -> NoReturn:
    """End a torchrun rank (or any process that held a process group) without the interpreter's teardown, which can
    abort it (SIGABRT, "terminate called without an active exception") on threads the process group leaves behind,
    after its work is done and written: seen under load in the kit's torchrun tests and distributed benchmark."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def check_divisible(batch_sizes: dict[str, int], world_size: int) -> None:
    for setting, size in batch_sizes.items():
        if size % world_size:
            raise LaunchError(f"{setting}={size} is not divisible by the world size {world_size}: each rank takes "
                              f"{setting} / world_size rows of each global batch")


def check_launch(mode: str, batch_sizes: dict[str, int], device: str) -> str:
    """Refuse a mode that cannot run as launched (before any process group exists); return this rank's device.
    ``batch_sizes``: setting -> global batch size, each split evenly over the ranks."""
    env = torchrun_env()
    if mode != "none" and env is None and not dist.is_initialized():
        raise LaunchError(f"parallel={mode!r} needs the processes and environment torchrun provides (RANK, "
                          f"WORLD_SIZE, MASTER_ADDR, ...): launch with `torchrun --standalone --nproc-per-node N "
                          f"-m impl.programs.train --parallel {mode} ...`, or use parallel='none'")
    if env is None:
        return device
    rank, local_rank, world_size = env
    if mode == "none" and world_size > 1:
        raise LaunchError(f"launched as {world_size} processes but parallel='none': every process would train its "
                          f"own copy of the model and write the same files; choose --parallel "
                          f"{'|'.join(PARALLEL_CHOICES[1:])}")
    check_divisible(batch_sizes, world_size)
    if device.startswith("cuda") and mode != "none":
        return f"cuda:{local_rank}"  # one GPU per rank on each node
    return device


class DataParallel:
    """This rank's place in the run and the mode's pieces: wrapper, optimizer, gradient sync, clipping, checkpoint
    state. With mode 'none' every method is the single-process behaviour (and communicates nothing)."""

    def __init__(self, mode: str, device: str, batch_sizes: dict[str, int], bucket_size_mb: float,
                 timeout_minutes: float):
        self.mode, self.bucket_size_mb = mode, bucket_size_mb
        self.rank, self.world_size, self.owns_group = 0, 1, False
        if mode != "none":
            if not dist.is_initialized():  # a caller's group (several runs in one launch) is used as it is
                if device.startswith("cuda"):
                    torch.cuda.set_device(device)
                # NCCL enforces the timeout through its watchdog, gloo in every collective.
                dist.init_process_group("nccl" if device.startswith("cuda") else "gloo",
                                        timeout=timedelta(minutes=timeout_minutes),
                                        device_id=torch.device(device) if device.startswith("cuda") else None)
                self.owns_group = True
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        check_divisible(batch_sizes, self.world_size)  # check_launch saw torchrun's numbers; a caller's group here
        self.sharded: list[bool] = []  # FSDP: per parameter (wrapper order), whether this rank holds rows of it

    def rows(self, batch_size: int) -> slice:
        """This rank's contiguous rows of a global batch of ``batch_size`` rows."""
        per_rank = batch_size // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if self.owns_group:
            dist.destroy_process_group()
            self.owns_group = False

    # -- construction ------------------------------------------------------------------------------------

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to call in training (``model`` itself in mode 'none'); a collective in the other modes."""
        if self.mode == "ddp":
            return DDPIndividualParameters(model)
        if self.mode in ("ddp_bucketed", "sharded_optimizer"):
            return DDPBucketed(model, self.bucket_size_mb)
        if self.mode == "fsdp":
            wrapper = FSDP(model)  # compute in the weights' dtype; bf16 comes from the trainer's autocast
            shards = {id(shard.param) for shard in wrapper.shards}
            self.sharded = [id(p) in shards for p in wrapper.parameters()]
            return wrapper
        return model

    def optimizer(self, params: Iterable[Tensor], optimizer_cls: type[torch.optim.Optimizer],
                  **kwargs) -> torch.optim.Optimizer:
        if self.mode == "sharded_optimizer":
            return ShardedOptimizer(params, optimizer_cls, **kwargs)
        return optimizer_cls(params, **kwargs)

    # -- each step ---------------------------------------------------------------------------------------

    def sync_gradients(self, wrapped: nn.Module) -> None:
        """After backward: every gradient the optimizer reads becomes the mean over the ranks."""
        if self.mode != "none":
            wrapped.finish_gradient_synchronization()

    def clip_gradients(self, parameters: Iterable[nn.Parameter], max_norm: float) -> Tensor:
        """impl.train.clip_gradients; under FSDP by the norm of the whole model's gradient, which no rank holds:
        the sharded parts' squares summed over ranks, the replicated parts' counted once. Returns that norm."""
        parameters = list(parameters)
        if self.mode != "fsdp":
            return clip_gradients(parameters, max_norm)  # every rank holds the same, whole gradients
        sharded = [p.grad for p, is_sharded in zip(parameters, self.sharded) if is_sharded and p.grad is not None]
        whole = [p.grad for p, is_sharded in zip(parameters, self.sharded) if not is_sharded and p.grad is not None]
        device = parameters[0].device
        sharded_sq = sum_of_squares(sharded, device)
        dist.all_reduce(sharded_sq)
        total_norm = (sharded_sq + sum_of_squares(whole, device)).sqrt()
        # The same rule as clip_gradients (eps 1e-6), one scale on every rank.
        scale = torch.where(total_norm > max_norm, max_norm / (total_norm + 1e-6), torch.ones_like(total_norm))
        torch._foreach_mul_(sharded + whole, scale)
        return total_norm

    def mean(self, value: Tensor) -> Tensor:
        """The mean over ranks of a per-rank value (a loss over this rank's rows -> the loss over the batch)."""
        if self.world_size == 1:
            return value
        value = value.detach().clone()
        dist.all_reduce(value)  # SUM: gloo has no AVG
        return value / self.world_size

    def rank_0_decides(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank: for choices every rank must make alike (a wall-clock limit)."""
        if self.world_size == 1:
            return flag
        box = [flag]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_rank_0(self, action: Callable[[], None], error: type[Exception]) -> None:
        """Run ``action`` (file writes) on rank 0 only; the other ranks wait for it and raise ``error`` if it failed."""
        failure = None
        if self.is_main:
            try:
                action()
            except Exception as raised:  # re-raised below, after the other ranks have heard of it
                failure = raised
        if self.world_size > 1:
            outcome = [None if failure is None else f"{type(failure).__name__}: {failure}"]
            dist.broadcast_object_list(outcome, src=0)
            if not self.is_main and outcome[0] is not None:
                raise error(f"rank 0 failed, so rank {self.rank} stops too: {outcome[0]}")
        if failure is not None:
            raise failure

    # -- checkpoints: always the single-process form ---------------------------------------------------

    def full_model_state(self, model: nn.Module, wrapped: nn.Module) -> dict[str, Tensor]:
        """The unwrapped model's state dict with whole tensors, on every rank (a collective under FSDP). ``model``
        may sit inside the wrapped module (the trainer's model-and-loss module): its own keys, without its prefix."""
        if self.mode != "fsdp":
            return model.state_dict()
        state = wrapped.full_state_dict()
        name = next(name for name, module in wrapped.module.named_modules() if module is model)
        if not name:  # the model itself was wrapped
            return state
        return {key[len(name) + 1:]: tensor for key, tensor in state.items() if key.startswith(f"{name}.")}

    def full_optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict | None:
        """On rank 0, the state dict of one optimizer over all parameters (None on the other ranks); a collective.

        ShardedOptimizer.state_dict() (torch's base class) numbers the parameters over all of them but holds the
        state of this rank's own only: the ranks' pieces are disjoint and merge. FSDP's AdamW holds this rank's
        rows of each sharded weight's moments: concatenated in rank order, they are the whole weight's.
        """
        state = optimizer.state_dict()
        if self.mode not in ("sharded_optimizer", "fsdp") or self.world_size == 1:
            return state if self.is_main else None  # replicated: rank 0 holds all of it
        mine = {i: {k: v.cpu() if torch.is_tensor(v) else v for k, v in s.items()} for i, s in state["state"].items()
                if self.mode == "sharded_optimizer" or self.sharded[i]}
        pieces: list | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(mine, pieces, dst=0)
        if not self.is_main:
            return None
        merged = dict(state["state"])  # FSDP: the replicated parameters' state, the same on every rank
        if self.mode == "sharded_optimizer":
            for piece in pieces:
                merged.update(piece)
        else:
            for i in pieces[0]:
                merged[i] = {k: torch.cat([piece[i][k] for piece in pieces]) if torch.is_tensor(v) and v.dim() else v
                             for k, v in pieces[0][i].items()}  # (rows_r, ...) for r in ranks -> (rows, ...)
        return {"state": dict(sorted(merged.items())), "param_groups": state["param_groups"]}

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, full: dict) -> None:
        """Load a state dict in the single-process form: each rank takes the share its mode keeps."""
        if self.mode == "fsdp":
            full = {"state": {i: self.shard_state(i, s) for i, s in full["state"].items()},
                    "param_groups": full["param_groups"]}
        if self.mode != "sharded_optimizer":
            optimizer.load_state_dict(full)
            return
        # ShardedOptimizer steps a local optimizer over the parameters this rank owns (impl.distributed.sharded_optimizer):
        # renumber the owned parameters' state in its order, hyperparameters from the checkpoint's groups.
        index = {id(p): i for i, p in enumerate(p for group in optimizer.param_groups for p in group["params"])}
        local, state, groups, j = optimizer.local, {}, [], 0
        for group, saved in zip(local.param_groups, full["param_groups"], strict=True):
            for p in group["params"]:
                if index[id(p)] in full["state"]:
                    state[j] = full["state"][index[id(p)]]
                j += 1
            groups.append({**saved, "params": list(range(j - len(group["params"]), j))})
        local.load_state_dict({"state": state, "param_groups": groups})
        for group, saved in zip(optimizer.param_groups, full["param_groups"]):
            group.update({k: v for k, v in saved.items() if k != "params"})

    def shard_state(self, i: int, state: dict) -> dict:
        """FSDP: this rank's rows (tensor_split, as the wrapper cuts the weight) of parameter ``i``'s moments."""
        if not self.sharded[i]:
            return state
        return {k: v.tensor_split(self.world_size)[self.rank].clone() if torch.is_tensor(v) and v.dim() else v
                for k, v in state.items()}


def sum_of_squares(grads: list[Tensor], device: torch.device) -> Tensor:
    """Σ g² over all the tensors, in float32 (multi-tensor kernels, as clip_gradients)."""
    if not grads:
        return torch.zeros((), dtype=torch.float32, device=device)
    return torch.stack(torch._foreach_norm(grads, 2, dtype=torch.float32)).square().sum()
