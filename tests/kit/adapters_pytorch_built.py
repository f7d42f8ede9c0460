"""A course-style ``adapters.py`` over the PyTorch-built pieces (tests/kit/pytorch_built.py).

The course's ``run_*`` / ``get_*`` names and signatures (assignment1-basics; assignment2-systems' FlashAttention-2
getter, its DDP and sharded-optimizer adapters), each glue only: build the PyTorch-built module on the weights'
device and dtype, load the weights, call it; or hand back torch's class. The functions for components PyTorch has
no piece for (train_bpe, the tokenizer, SwiGLU, RoPE, attention, the block, the LM, the schedule, the Triton
FlashAttention-2, FSDP) are left out, as a student who has not written them yet would: the suite reports them
missing::

    python -m pytest tests/conformance --impl adapters:tests/kit/adapters_pytorch_built.py
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import IO, Any, BinaryIO

import numpy.typing as npt
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from tests.kit import pytorch_built as pb


def _loaded(module: torch.nn.Module, weights: Tensor) -> torch.nn.Module:
    module.load_state_dict({"weight": weights})
    return module


def run_linear(d_in: int, d_out: int, weights: Float[Tensor, " d_out d_in"],
               in_features: Float[Tensor, " ... d_in"]) -> Float[Tensor, " ... d_out"]:
    return _loaded(pb.Linear(d_in, d_out, device=weights.device, dtype=weights.dtype), weights)(in_features)


def run_embedding(vocab_size: int, d_model: int, weights: Float[Tensor, " vocab_size d_model"],
                  token_ids: Int[Tensor, " ..."]) -> Float[Tensor, " ... d_model"]:
    return _loaded(pb.Embedding(vocab_size, d_model, device=weights.device, dtype=weights.dtype), weights)(token_ids)


def run_rmsnorm(d_model: int, eps: float, weights: Float[Tensor, " d_model"],
                in_features: Float[Tensor, " ... d_model"]) -> Float[Tensor, " ... d_model"]:
    return _loaded(pb.RMSNorm(d_model, eps, device=weights.device, dtype=weights.dtype), weights)(in_features)


def run_silu(in_features: Float[Tensor, " ..."]) -> Float[Tensor, " ..."]:
    return pb.silu(in_features)


def run_softmax(in_features: Float[Tensor, " ..."], dim: int) -> Float[Tensor, " ..."]:
    return pb.softmax(in_features, dim)


def run_scaled_dot_product_attention(
    Q: Float[Tensor, " ... queries d_k"],
    K: Float[Tensor, " ... keys d_k"],
    V: Float[Tensor, " ... values d_v"],
    mask: Bool[Tensor, " ... queries keys"] | None = None,
) -> Float[Tensor, " ... queries d_v"]:
    return pb.scaled_dot_product_attention(Q, K, V, mask)


def run_cross_entropy(inputs: Float[Tensor, " batch_size vocab_size"], targets: Int[Tensor, " batch_size"]
                      ) -> Float[Tensor, ""]:
    return pb.cross_entropy(inputs, targets)


def run_gradient_clipping(parameters: Iterable[torch.nn.Parameter], max_l2_norm: float) -> None:
    pb.clip_gradients(parameters, max_l2_norm)


def get_adamw_cls() -> type[torch.optim.Optimizer]:
    return torch.optim.AdamW


def run_get_batch(dataset: npt.NDArray, batch_size: int, context_length: int, device: str
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    return pb.get_batch(dataset, batch_size, context_length, device)


def run_save_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, iteration: int,
                        out: str | os.PathLike | BinaryIO | IO[bytes]):
    pb.save_checkpoint(model, optimizer, iteration, out)


def run_load_checkpoint(src: str | os.PathLike | BinaryIO | IO[bytes], model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer) -> int:
    return pb.load_checkpoint(src, model, optimizer)


def get_flashattention_autograd_function_pytorch() -> type:
    return pb.FlashAttentionPyTorch


def get_ddp_individual_parameters(module: torch.nn.Module) -> torch.nn.Module:
    return pb.DDPIndividualParameters(module)


def ddp_individual_parameters_on_after_backward(ddp_model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    pass  # torch's DDP has finished its all-reduces when backward returns


def get_ddp_bucketed(module: torch.nn.Module, bucket_size_mb: float) -> torch.nn.Module:
    return pb.DDPBucketed(module, bucket_size_mb)


def ddp_bucketed_on_after_backward(ddp_model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    pass  # as above


def ddp_bucketed_on_train_batch_start(ddp_model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    pass  # torch's DDP resets its buckets itself


def get_sharded_optimizer(params, optimizer_cls: type[torch.optim.Optimizer], **kwargs: Any) -> torch.optim.Optimizer:
    return pb.ShardedOptimizer(params, optimizer_cls, **kwargs)
