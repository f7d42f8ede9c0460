"""Multi-head FlashAttention-2 for the LM, as custom operators (spec/kernels.py).

- ``flash_attention(q, k, v, is_causal)`` on (..., h, N, d) tensors;
- ``rotary_flash_attention(qkv, cos, sin, num_heads)``: RoPE and causal attention from the packed q|k|v projection
  (Z, N, h + 2 h_kv, d) to the heads (Z, N, h, d), what the LM's attention calls when the kernels are switched on
  (impl/kernels/fast_lm.py). Its backward writes dQ, dK and dV into one packed gradient, dQ and dK rotated back as
  they are stored.

The Triton kernels (impl/kernels/flash_triton.py, impl/kernels/rotary.py) on CUDA, the PyTorch FlashAttention-2
(impl/kernels/flash_pytorch.py) elsewhere.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from impl.kernels import flash_pytorch, flash_triton
from impl.kernels.rotary import rotate_heads


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


# RoPE + attention from the packed projection. The forward saves the rotated q|k|v (the projection's output itself is
# not kept) and the backward writes dQ, dK, dV straight into one (Z, N, h + 2 h_kv, d) gradient, dQ and dK rotated back
# as the kernels store them: no concatenation of the three gradients anywhere (the reason for the operator), and no
# pass of its own for the rotation's gradient.
def split_heads(packed: Tensor, num_heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """(Z, N, h + 2 h_kv, d) -> q (Z, h, N, d), k and v (Z, h_kv, N, d): views."""
    num_kv_heads = (packed.shape[-2] - num_heads) // 2
    q, k, v = packed.split((num_heads, num_kv_heads, num_kv_heads), dim=-2)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def repeat_kv_heads(kv: Tensor, groups: int) -> Tensor:
    """(Z, h_kv, N, d) -> (Z, h, N, d): key/value head g serves query heads g·r … g·r + r − 1 (impl.nn)."""
    return kv if groups == 1 else kv.repeat_interleave(groups, dim=1)


@torch.library.custom_op("cs336::rotary_flash_attention_forward", mutates_args=())
def rotary_attention_forward(qkv: Tensor, cos: Optional[Tensor], sin: Optional[Tensor], num_heads: int
                             ) -> tuple[Tensor, Tensor, Tensor]:
    """(O (Z, N, h, d), L (Z, h, N), the rotated q|k|v (Z, N, h + 2 h_kv, d))."""
    qkv = qkv.contiguous()
    num_kv_heads = (qkv.shape[-2] - num_heads) // 2
    rotated = torch.empty_like(qkv)
    if cos is None:
        rotated.copy_(qkv)
    else:
        rotate_heads(qkv, cos, sin, num_heads + num_kv_heads, out=rotated)
    q, k, v = split_heads(rotated, num_heads)
    groups = num_heads // num_kv_heads
    o, lse = functions_for(qkv.device)[0](q, repeat_kv_heads(k, groups), repeat_kv_heads(v, groups), True)
    return flash_pytorch.in_order_of(o, q).transpose(1, 2), lse, rotated


@rotary_attention_forward.register_fake
def _(qkv, cos, sin, num_heads):
    z, n, _, d = qkv.shape
    return (qkv.new_empty(z, n, num_heads, d), qkv.new_empty(z, num_heads, n, dtype=torch.float32),
            torch.empty_like(qkv, memory_format=torch.contiguous_format))


@torch.library.custom_op("cs336::rotary_flash_attention_backward", mutates_args=())
def rotary_attention_backward(rotated: Tensor, o: Tensor, lse: Tensor, do: Tensor, cos: Optional[Tensor],
                              sin: Optional[Tensor], num_heads: int) -> Tensor:
    """d(qkv) (Z, N, h + 2 h_kv, d), from the saved rotated q|k|v, O, L and dO (Z, N, h, d)."""
    q, k, v = split_heads(rotated, num_heads)
    num_kv_heads, groups = k.shape[1], num_heads // k.shape[1]
    d_qkv = torch.empty_like(rotated)
    dq, dk, dv = split_heads(d_qkv, num_heads)
    backward = functions_for(rotated.device)[1]
    rotation = {"angles": (cos, sin)} if cos is not None else {}  # dQ and dK come out rotated back
    if groups == 1:
        backward(q, k, v, o.transpose(1, 2), lse, do.transpose(1, 2), True, out=(dq, dk, dv), **rotation)
    else:  # every query head's dK and dV, summed over the heads that share a key/value head (rotating is linear)
        k_all, v_all = repeat_kv_heads(k, groups), repeat_kv_heads(v, groups)
        dk_all, dv_all = torch.empty_like(k_all), torch.empty_like(v_all)
        backward(q, k_all, v_all, o.transpose(1, 2), lse, do.transpose(1, 2), True, out=(dq, dk_all, dv_all),
                 **rotation)
        dk.copy_(dk_all.unflatten(1, (num_kv_heads, groups)).sum(2))
        dv.copy_(dv_all.unflatten(1, (num_kv_heads, groups)).sum(2))
    return d_qkv


@rotary_attention_backward.register_fake
def _(rotated, o, lse, do, cos, sin, num_heads):
    return torch.empty_like(rotated)


def save_for_rotary_backward(ctx, inputs, output) -> None:
    _, cos, sin, ctx.num_heads = inputs
    o, lse, rotated = output
    ctx.save_for_backward(rotated, o, lse, cos, sin)


def rotary_attention_gradients(ctx, do: Tensor, _lse_grad: Tensor, _rotated_grad: Tensor):
    """d(qkv) from the backward operator; L and the rotated q|k|v are outputs only so that they can be saved."""
    rotated, o, lse, cos, sin = ctx.saved_tensors
    return rotary_attention_backward(rotated, o, lse, do.contiguous(), cos, sin, ctx.num_heads), None, None, None


rotary_attention_forward.register_autograd(rotary_attention_gradients, setup_context=save_for_rotary_backward)


def rotary_flash_attention(qkv: Tensor, cos: Tensor | None, sin: Tensor | None, num_heads: int) -> Tensor:
    """Causal attention of the packed projection (Z, N, h + 2 h_kv, d), its q and k heads rotated by RoPE angles
    cos, sin ((N, d/2) or (Z, N, d/2), float32; None: no RoPE) -> (Z, N, h, d)."""
    check_packed_inputs(qkv, cos, sin, num_heads)
    return rotary_attention_forward(qkv, cos, sin, num_heads)[0]


def check_packed_inputs(qkv: Tensor, cos: Tensor | None, sin: Tensor | None, num_heads: int) -> None:
    """Clear errors, before any work, for a packed projection or angles that rotary_flash_attention cannot take."""
    if qkv.dim() != 4:
        raise ValueError(f"rotary_flash_attention takes the packed projection (Z, N, h + 2 h_kv, d), got shape "
                         f"{tuple(qkv.shape)}")
    num_kv_heads, odd = divmod(qkv.shape[-2] - num_heads, 2)
    if num_heads < 1 or num_kv_heads < 1 or odd or num_heads % num_kv_heads:
        raise ValueError(f"rotary_flash_attention: {qkv.shape[-2]} packed heads are not num_heads={num_heads} query "
                         "heads and twice a number of key/value heads that divides it")
    q = qkv[..., :num_heads, :].transpose(1, 2)
    if qkv.device.type == "cuda":
        flash_triton.check_triton_inputs(q, q, q)
    else:
        flash_pytorch.check_inputs(q, q, q, "FlashAttentionPyTorch")
    if (cos is None) != (sin is None):
        raise ValueError("rotary_flash_attention takes both cos and sin, or neither (no RoPE)")
    if cos is None:
        return
    z, n, _, d = qkv.shape
    if cos.shape != sin.shape or cos.shape not in ((n, d // 2), (z, n, d // 2)) or d % 2:
        raise ValueError(f"rotary_flash_attention: cos and sin must be (N, d/2) or (Z, N, d/2) = ({n}, {d // 2}) or "
                         f"({z}, {n}, {d // 2}) for an even d, got {tuple(cos.shape)} and {tuple(sin.shape)}")
    if cos.dtype != torch.float32 or sin.dtype != torch.float32 or cos.device != qkv.device:
        raise ValueError(f"rotary_flash_attention: cos and sin must be float32 on {qkv.device}, got {cos.dtype} on "
                         f"{cos.device} and {sin.dtype}")
