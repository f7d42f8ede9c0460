"""PyTorch-built: the spec's components made of PyTorch's own pieces wherever PyTorch has one.

Written as a student who leans on PyTorch would write them (the course forbids most of these pieces, A1 §1 "What
you can use"; the kit must still never fail them, issue 15): each member is a thin wrapper, with a comment naming
the PyTorch piece. Components PyTorch has no piece for (the tokenizer, SwiGLU, RoPE, the attention module and the
LM, the schedule, decoding, the Triton kernels, FSDP: torch's FSDP2 shards every parameter as DTensors, not the
spec's Linear/Embedding rows as plain float32 shards) are absent, hence reported missing::

    python -m pytest tests/conformance --impl tests.kit.pytorch_built:IMPLEMENTATION

tests/kit/adapters_pytorch_built.py offers the same pieces through the course's adapters; tests/kit/
test_pytorch_built.py runs both routes and requires no course-level FAIL.
"""

from __future__ import annotations

import os
from typing import IO, BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel

from spec import Implementation

# ---------------------------------------------------------------------------------------------- nn (A1 §3)


class Linear(nn.Linear):
    """torch.nn.Linear without bias, with the course's constructor. Its init is torch's (Kaiming uniform)."""

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=False, device=device, dtype=dtype)


class Embedding(nn.Embedding):
    """torch.nn.Embedding with the course's constructor. Its init is torch's (N(0, 1), not truncated)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None):
        super().__init__(num_embeddings, embedding_dim, device=device, dtype=dtype)


class RMSNorm(nn.RMSNorm):
    """torch.nn.RMSNorm over the last dim with the course's constructor (its default eps would be the dtype's)."""

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__(d_model, eps=eps, device=device, dtype=dtype)


silu = F.silu  # torch.nn.functional.silu


def softmax(x: Tensor, dim: int) -> Tensor:
    return torch.softmax(x, dim)  # torch.softmax


def scaled_dot_product_attention(Q: Tensor, K: Tensor, V: Tensor, mask: Tensor | None = None) -> Tensor:
    return F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)  # a boolean attn_mask: True = attend, as the course's


# ---------------------------------------------------------------------------------------------- train (A1 §4–§5)


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))  # F.cross_entropy, flattened


AdamW = torch.optim.AdamW  # its defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01) are the course's


def clip_gradients(parameters, max_l2_norm: float) -> None:
    torch.nn.utils.clip_grad_norm_(parameters, max_l2_norm)  # one global L2 norm, scale M / (norm + 1e-6)


def get_batch(dataset: np.ndarray, batch_size: int, context_length: int, device: str,
              rng: np.random.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Windows sliced in numpy, then torch.from_numpy(...).to(device)."""
    rng = rng if rng is not None else np.random.default_rng()
    starts = rng.integers(0, len(dataset) - context_length, size=batch_size)  # [0, n − m − 1]
    windows = np.stack([np.asarray(dataset[s:s + context_length + 1], dtype=np.int64) for s in starts])
    batch = torch.from_numpy(windows).to(device)
    return batch[:, :-1], batch[:, 1:]


def save_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, iteration: int,
                    out: str | os.PathLike | BinaryIO | IO[bytes]) -> None:
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iteration": iteration}, out)


def load_checkpoint(src: str | os.PathLike | BinaryIO | IO[bytes], model: nn.Module,
                    optimizer: torch.optim.Optimizer) -> int:
    checkpoint = torch.load(src)  # torch.load (weights_only: state dicts hold only tensors and numbers)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint["iteration"]


# ---------------------------------------------------------------------------------------------- kernels (A2 §4)


class FlashAttentionPyTorch(torch.autograd.Function):
    """O from F.scaled_dot_product_attention (its is_causal is top-left aligned, as the course's); L, which no public
    PyTorch attention returns, from torch.logsumexp over the scaled scores (materialized: not tiled); the backward
    is autograd through F.scaled_dot_product_attention again (recomputation)."""

    @staticmethod
    def forward(ctx, Q: Tensor, K: Tensor, V: Tensor, is_causal: bool = False) -> Tensor:
        O = F.scaled_dot_product_attention(Q, K, V, is_causal=is_causal)
        compute = torch.promote_types(Q.dtype, torch.float32)  # L in float32 (float64 for float64 inputs)
        S = Q.to(compute) @ K.to(compute).transpose(-1, -2) * Q.shape[-1] ** -0.5
        if is_causal:
            S = S.masked_fill(~torch.ones(S.shape[-2:], dtype=torch.bool, device=S.device).tril(), float("-inf"))
        L = torch.logsumexp(S, dim=-1)
        ctx.save_for_backward(Q, K, V, O, L)
        ctx.is_causal = is_causal
        return O

    @staticmethod
    def backward(ctx, dO: Tensor):
        Q, K, V, _, _ = ctx.saved_tensors
        with torch.enable_grad():
            q, k, v = (t.detach().requires_grad_(True) for t in (Q, K, V))
            O = F.scaled_dot_product_attention(q, k, v, is_causal=ctx.is_causal)
            dQ, dK, dV = torch.autograd.grad(O, (q, k, v), dO)
        return dQ, dK, dV, None


def flash_attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool = False) -> Tensor:
    """Multi-head: the autograd Function above (on every device: there are no Triton kernels here)."""
    return FlashAttentionPyTorch.apply(q, k, v, is_causal)


# ---------------------------------------------------------------------------------------------- distributed (A2 §5–§6)


class DDPIndividualParameters(DistributedDataParallel):
    """torch.nn.parallel.DistributedDataParallel: it broadcasts rank 0's state at construction and its reducer
    all-reduces (and averages) the gradients during backward, waiting for them before backward returns."""

    def __init__(self, module: nn.Module):
        super().__init__(module)

    def finish_gradient_synchronization(self) -> None:
        pass  # DDP's backward has already waited for its all-reduces


class DDPBucketed(DistributedDataParallel):
    """torch DDP with its bucket size, bucket_cap_mb (None: torch's default, 25 MiB)."""

    def __init__(self, module: nn.Module, bucket_size_mb: float | None):
        super().__init__(module, bucket_cap_mb=bucket_size_mb)

    def finish_gradient_synchronization(self) -> None:
        pass  # as DDPIndividualParameters


class ShardedOptimizer(ZeroRedundancyOptimizer):
    """torch.distributed.optim.ZeroRedundancyOptimizer: optimizer_class over this rank's shard, then broadcasts."""

    def __init__(self, params, optimizer_cls: type[torch.optim.Optimizer], **kwargs):
        super().__init__(params, optimizer_cls, **kwargs)


IMPLEMENTATION = Implementation(
    name="PyTorch-built",
    version=torch.__version__,
    members={
        "Linear": Linear, "Embedding": Embedding, "RMSNorm": RMSNorm, "silu": silu, "softmax": softmax,
        "scaled_dot_product_attention": scaled_dot_product_attention,
        "cross_entropy": cross_entropy, "AdamW": AdamW, "clip_gradients": clip_gradients, "get_batch": get_batch,
        "save_checkpoint": save_checkpoint, "load_checkpoint": load_checkpoint,
        "FlashAttentionPyTorch": FlashAttentionPyTorch, "flash_attention": flash_attention,
        "DDPIndividualParameters": DDPIndividualParameters, "DDPBucketed": DDPBucketed,
        "ShardedOptimizer": ShardedOptimizer,
    },
)
