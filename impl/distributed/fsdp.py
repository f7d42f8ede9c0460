"""Fully-sharded data parallel: every Linear and Embedding weight split by rows across the ranks (handout A2 §7).

Which layers: any layer without submodules whose ``weight`` is a matrix (``shardable``), whatever its class, so that
a course participant's own ``Linear`` and ``Embedding`` classes are sharded as torch.nn's are; a norm's gain is a
vector and stays replicated.

Each rank keeps rows ``tensor_split(weight, world_size)[rank]`` of every such weight as a float32 master
Parameter, registered in the layer under its own name (``weight``), so that ``module.parameters()`` and any
optimizer see the shards. Everything else (norm gains, biases) stays replicated. The normative text is
``spec/distributed.py``.

How a layer gets its full weight. A sharded layer's class becomes a subclass whose ``weight`` is a
property: inside the wrapper's forward it returns the all-gathered full weight, elsewhere the shard. A
property, not a forward hook on the layer, because modules may read a child's weight without calling
the child (an attention that concatenates ``q_proj.weight``, ``k_proj.weight`` and ``v_proj.weight`` into
one matmul, as course models often do); torch's own FSDP2 (``fully_shard``) swaps module classes the same way.

- Forward: the first read of a weight waits for its all-gather and starts the next ones in module order,
  so that at most ``PREFETCH`` gathers are outstanding (started and not yet read). The wrapper keeps no
  reference to a weight it handed out: it lives as long as the layer's computation uses it.
- Autograd would otherwise keep every gathered weight until backward (``x @ W.T`` saves ``W``): a
  saved-tensor hook stores a note in its place and backward all-gathers the weight again.
- Backward of the gather reduce-scatters the full weight's gradient (summed over ranks, then divided by
  the world size in float32) into the shard's ``.grad``; replicated parameters' gradients are all-reduced
  and averaged in ``finish_gradient_synchronization``.
- ``compute_dtype``: the shard is cast before it is communicated, so gathers, compute and the gradients'
  reduce-scatter all run in it; the master shards, their ``.grad`` and the optimizer stay float32.
- Activation checkpointing (``checkpointed(fn, *args)``: torch.utils.checkpoint, non-reentrant): the region saves
  nothing for backward, not even the Regather notes; its recomputation in backward reads the weights as the
  forward did, each gathered again when read (no prefetch: backward's order is not the module order).
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from impl.distributed.ddp import broadcast_from_rank_0, check_same_parameters

PREFETCH = 2  # gathers outstanding at once in forward (A2 §7: gather after the layer two before has run)


def shardable(layer: nn.Module) -> bool:
    """Linear- and Embedding-like: no submodules, and a ``weight`` that is a matrix. By shape, not by class: the
    model wrapped is built from its author's own layer classes."""
    weight = layer._parameters.get("weight")
    return weight is not None and weight.dim() == 2 and next(layer.children(), None) is None


def all_gather_flat(output: Tensor, input: Tensor, async_op: bool = False):
    # Newer torch renamed the single-tensor collectives (*_single); there the old names warn (FutureWarning).
    return getattr(dist, "all_gather_single", dist.all_gather_into_tensor)(output, input, async_op=async_op)


def reduce_scatter_flat(output: Tensor, input: Tensor):
    return getattr(dist, "reduce_scatter_single", dist.reduce_scatter_tensor)(output, input)


def has_flat_collectives() -> bool:
    """NCCL has them; gloo where torch has the *_single names. Older gloo lacks reduce_scatter altogether."""
    return dist.get_backend() != "gloo" or hasattr(dist, "reduce_scatter_single")


@dataclass(eq=False)
class Shard:
    """One sharded weight: this rank's rows as a float32 master Parameter, and how the full weight is cut."""

    param: nn.Parameter
    rows: list[int]  # rows of every rank's piece: tensor_split sizes, differing by at most one
    dtype: torch.dtype  # the full weight's dtype before sharding: the compute dtype when none is given

    @property
    def chunk(self) -> int:
        return max(self.rows)  # every rank's piece is padded to this many rows: collectives need equal sizes


@dataclass(frozen=True)
class Regather:
    """What the saved-tensor hook keeps instead of a gathered weight (or a view of it): enough to rebuild it."""

    index: int
    size: torch.Size
    stride: tuple[int, ...]
    offset: int


class GatherWeight(torch.autograd.Function):
    """shard -> full weight (forward: all-gather); grad of full -> averaged grad of the shard (reduce-scatter)."""

    @staticmethod
    def forward(ctx, shard: Tensor, fsdp: FSDP, index: int) -> Tensor:
        ctx.fsdp, ctx.index = fsdp, index
        return fsdp.take(index)

    @staticmethod
    def backward(ctx, grad_full: Tensor):
        return ctx.fsdp.reduce_scatter(ctx.index, grad_full), None, None


def gathered_or_shard(layer: nn.Module) -> Tensor:
    """The ``weight`` property of a sharded layer."""
    fsdp, index = layer.fsdp_shard
    if fsdp.in_forward:
        return GatherWeight.apply(fsdp.shards[index].param, fsdp, index)
    return layer._parameters["weight"]


_sharded_classes: dict[type, type] = {}


def sharded_class(cls: type) -> type:
    """``cls`` with ``weight`` read through ``gathered_or_shard``; one subclass per class."""
    if cls not in _sharded_classes:
        _sharded_classes[cls] = type(f"FSDP{cls.__name__}", (cls,), {"weight": property(gathered_or_shard),
                                                                      "__module__": __name__})
    return _sharded_classes[cls]


class FSDP(nn.Module):
    """Shards Linear and Embedding weights by rows, gathers them layer by layer, reduce-scatters their gradients."""

    def __init__(self, module: nn.Module, compute_dtype: torch.dtype | None = None):
        super().__init__()
        self.module, self.compute_dtype = module, compute_dtype
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.flat = has_flat_collectives()
        check_same_parameters(module)
        broadcast_from_rank_0(module)  # the shards then cut rank 0's model, as DDP replicates it
        self.shards: list[Shard] = []
        layers = [(layer, layer._parameters["weight"]) for layer in module.modules() if shardable(layer)]
        shard_of: dict[int, int] = {}  # id(full weight) -> shard: a weight tied between layers is sharded once
        for layer, weight in layers:  # ``layers`` keeps every full weight alive here, so their ids stay unique
            if id(weight) not in shard_of:
                shard_of[id(weight)] = len(self.shards)
                self.shards.append(self.make_shard(weight))
            index = shard_of[id(weight)]
            layer.__class__ = sharded_class(type(layer))
            layer._parameters["weight"] = self.shards[index].param  # bypasses __setattr__, which the property blocks
            layer.fsdp_shard = (self, index)
        index_of = {id(shard.param): index for index, shard in enumerate(self.shards)}
        # State-dict key of every sharded weight (both keys of a tied one) -> its shard.
        self.shard_names = {name: index_of[id(p)] for name, p in module.named_parameters(remove_duplicate=False)
                            if id(p) in index_of}
        self.replicated = [p for p in module.parameters() if id(p) not in index_of and p.requires_grad]
        self.in_forward = False
        self.recomputing = False  # activation checkpointing's recomputation, in backward
        self.pending: dict[int, tuple[dist.Work, Tensor]] = {}  # shard -> its gather in flight
        self.cursor = 0  # the next shard to prefetch, in module order
        self.lent: dict[int, tuple[weakref.ref, int]] = {}  # id(gathered weight) -> (weakref, shard), this forward

    def make_shard(self, weight: nn.Parameter) -> Shard:
        rows = weight.tensor_split(self.world_size)
        # A copy, in float32: a view would keep the whole weight alive, and the master weight must be fp32.
        piece = rows[self.rank].detach().to(torch.float32, copy=True)
        shard = nn.Parameter(piece, requires_grad=weight.requires_grad)
        return Shard(shard, [len(r) for r in rows], weight.dtype)

    def forward(self, *inputs, **kwargs):
        self.in_forward, self.cursor = True, 0
        try:
            with torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack):
                return self.module(*inputs, **kwargs)
        finally:
            self.in_forward = False
            for work, _ in self.pending.values():  # prefetched but never read: complete, then drop
                work.wait()
            self.pending.clear()
            self.lent.clear()

    # -- forward: gathers with prefetch ----------------------------------------------------------------

    def take(self, index: int) -> Tensor:
        """The full weight of shard ``index`` (in the compute dtype); starts the next gathers before waiting."""
        if self.recomputing:
            return self.gather_now(index, self.dtype_of(index))
        work, buffer = self.pending.pop(index, None) or self.start_gather(index, self.dtype_of(index))
        self.cursor = max(self.cursor, index + 1)
        while len(self.pending) < PREFETCH and self.cursor < len(self.shards):
            if self.cursor not in self.pending:
                self.pending[self.cursor] = self.start_gather(self.cursor, self.dtype_of(self.cursor))
            self.cursor += 1
        work.wait()
        full = self.unpad(index, buffer)
        self.lent[id(full)] = (weakref.ref(full), index)
        return full

    def dtype_of(self, index: int) -> torch.dtype:
        return self.compute_dtype or self.shards[index].dtype

    def start_gather(self, index: int, dtype: torch.dtype) -> tuple[dist.Work, Tensor]:
        """Launch the all-gather of shard ``index`` cast to ``dtype`` (cast first: half the bytes in bf16)."""
        shard = self.shards[index]
        piece = shard.param.detach().to(dtype)  # (rows[rank], ...)
        if len(piece) < shard.chunk:
            piece = torch.cat((piece, piece.new_zeros(shard.chunk - len(piece), *piece.shape[1:])))
        buffer = piece.new_empty(self.world_size * shard.chunk, *piece.shape[1:])  # (N · chunk, ...)
        if self.flat:
            return all_gather_flat(buffer, piece, async_op=True), buffer
        return dist.all_gather(list(buffer.chunk(self.world_size)), piece, async_op=True), buffer

    def gather_now(self, index: int, dtype: torch.dtype) -> Tensor:
        work, buffer = self.start_gather(index, dtype)
        work.wait()
        return self.unpad(index, buffer)

    def unpad(self, index: int, buffer: Tensor) -> Tensor:
        """(N · chunk, ...) -> the full (rows, ...): rank r's rows are the first rows[r] of its chunk."""
        shard = self.shards[index]
        if len(set(shard.rows)) == 1:
            return buffer
        pieces = buffer.view(self.world_size, shard.chunk, *buffer.shape[1:])  # (N, chunk, ...)
        return torch.cat([pieces[r, :n] for r, n in enumerate(shard.rows)])

    # -- activation checkpointing -------------------------------------------------------------------------

    def checkpointed(self, fn, *args):
        """``fn(*args)`` under non-reentrant activation checkpointing, recomputed in backward with gathered weights.
        Called inside this wrapper's forward (a module's forward, say a Transformer block's)."""
        from torch.utils.checkpoint import checkpoint

        return checkpoint(fn, *args, use_reentrant=False,
                          context_fn=lambda: (contextlib.nullcontext(), self.recomputation()))

    @contextlib.contextmanager
    def recomputation(self):
        before = self.in_forward, self.recomputing
        self.in_forward = self.recomputing = True
        try:
            yield
        finally:
            self.in_forward, self.recomputing = before

    # -- saved tensors: a gathered weight is not kept for backward, but gathered again ------------------

    def pack(self, tensor: Tensor):
        root = tensor if tensor._base is None else tensor._base  # matmul saves W.T, a view of W
        lent = self.lent.get(id(root))
        if lent is None or lent[0]() is not root:
            # Detached: a saved output returned as itself would hold its own grad_fn, a cycle that keeps every
            # step's graph and activations alive (about 2.5 GB a step at the XL size).
            return tensor.detach()
        return Regather(lent[1], tensor.size(), tensor.stride(), tensor.storage_offset())

    def unpack(self, saved):
        if not isinstance(saved, Regather):
            return saved
        full = self.gather_now(saved.index, self.dtype_of(saved.index))  # the same layout as in forward
        return full.as_strided(saved.size, saved.stride, saved.offset)

    # -- gradients -------------------------------------------------------------------------------------

    def reduce_scatter(self, index: int, grad_full: Tensor) -> Tensor:
        """Sum the full weight's gradient over ranks, keep this rank's rows, average in float32."""
        shard = self.shards[index]
        grad = grad_full.to(self.dtype_of(index))  # (rows, ...)
        if len(set(shard.rows)) > 1:  # pad every rank's rows to ``chunk``, as in the gather
            padded = grad.new_zeros(self.world_size, shard.chunk, *grad.shape[1:])
            for r, piece in enumerate(grad.tensor_split(self.world_size)):
                padded[r, :len(piece)] = piece
            grad = padded.flatten(0, 1)  # (N · chunk, ...)
        grad = grad.contiguous()
        if self.flat:
            mine = grad.new_empty(shard.chunk, *grad.shape[1:])
            reduce_scatter_flat(mine, grad)
        else:  # older gloo has no reduce_scatter: all-reduce everything, keep our chunk
            dist.all_reduce(grad)
            mine = grad.view(self.world_size, shard.chunk, *grad.shape[1:])[self.rank]
        return mine[:shard.rows[self.rank]].to(torch.float32) / self.world_size

    def finish_gradient_synchronization(self) -> None:
        """Average the replicated parameters' gradients (shards got theirs in backward). Call after backward."""
        works = [(p, dist.all_reduce(p.grad, async_op=True)) for p in self.replicated if p.grad is not None]
        for parameter, work in works:
            work.wait()
            parameter.grad.div_(self.world_size)

    def full_state_dict(self) -> dict[str, Tensor]:
        """The module's state dict with every sharded weight gathered whole, float32, on every rank (a collective)."""
        full: dict[int, Tensor] = {}
        state = {}
        for name, tensor in self.module.state_dict().items():
            index = self.shard_names.get(name)
            if index is None:
                state[name] = tensor.to(torch.float32) if tensor.is_floating_point() else tensor
                continue
            if index not in full:  # a tied weight: gathered once, under both keys
                full[index] = self.gather_now(index, torch.float32)
            state[name] = full[index]
        return state
