"""``flash_attention``: multi-head FlashAttention-2 for the LM, as custom operators (spec/kernels.py).

The Triton kernels (impl/kernels/flash_triton.py) on CUDA, the PyTorch FlashAttention-2
(impl/kernels/flash_pytorch.py) elsewhere, on (..., h, N, d) tensors; the LM's attention calls it
when the kernels are switched on (impl/kernels/fast_lm.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from impl.kernels import flash_pytorch, flash_triton


def functions_for(device: torch.device):
    """(forward, backward) of FlashAttention-2 on ``device``: the Triton kernels on CUDA, PyTorch elsewhere."""
    if device.type == "cuda":
        return flash_triton.flash_forward, flash_triton.flash_backward
    return flash_pytorch.flash_forward, flash_pytorch.flash_backward


# The multi-head form runs as two custom operators, forward and backward, so that torch.compile keeps the
# LM in one graph: it sees opaque calls with known output shapes (the fake implementations) where it
# would otherwise break the graph at every attention call to run the autotuned Triton launch eagerly.
# O and the gradients come back in the order of dims of q, k and v (flash_pytorch.empty_in_order_of): the LM hands in
# transposed views of token-major memory and reads the results as views again.
@torch.library.custom_op("cs336::flash_attention_forward", mutates_args=())
def attention_forward(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> tuple[Tensor, Tensor]:
    o, lse = functions_for(q.device)[0](q, k, v, is_causal)
    return flash_pytorch.in_order_of(o, q), lse


@attention_forward.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> tuple[Tensor, Tensor]:
    lse_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    return flash_pytorch.empty_in_order_of(q), q.new_empty(q.shape[:-1], dtype=lse_dtype)


@torch.library.custom_op("cs336::flash_attention_backward", mutates_args=())
def attention_backward(q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, do: Tensor, is_causal: bool
                       ) -> tuple[Tensor, Tensor, Tensor]:
    gradients = functions_for(q.device)[1](q, k, v, o, lse, do, is_causal)
    return tuple(flash_pytorch.in_order_of(g, x) for g, x in zip(gradients, (q, k, v)))


@attention_backward.register_fake
def _(q, k, v, o, lse, do, is_causal):
    return tuple(flash_pytorch.empty_in_order_of(x) for x in (q, k, v))


def save_for_attention_backward(ctx, inputs, output) -> None:
    q, k, v, is_causal = inputs
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse)
    ctx.is_causal = is_causal


def attention_gradients(ctx, do: Tensor, _lse_grad: Tensor):
    """dQ, dK, dV from the backward operator; L is an output only so that it can be saved (no gradient flows to it)."""
    q, k, v, o, lse = ctx.saved_tensors
    return (*attention_backward(q, k, v, o, lse, do, ctx.is_causal), None)


attention_forward.register_autograd(attention_gradients, setup_context=save_for_attention_backward)


def flash_attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool = False) -> Tensor:
    """Multi-head attention (..., h, N, d): the Triton kernels on CUDA, the PyTorch FA2 elsewhere."""
    if q.device.type == "cuda":
        flash_triton.check_triton_inputs(q, k, v)
    else:
        flash_pytorch.check_inputs(q, k, v, "FlashAttentionPyTorch")
    return attention_forward(q, k, v, bool(is_causal))[0]
