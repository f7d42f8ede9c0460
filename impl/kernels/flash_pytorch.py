"""FlashAttention-2 in pure PyTorch (handout A2 §4.2.2 (a), flash_backward).

Algorithm 1 as written: Q in tiles of Q_TILE rows, K and V in tiles of K_TILE rows, an online
softmax with a running max m and sum l per query row, and the logsumexp L = m + log l saved for
the backward, which recomputes P = exp(S − L) tile by tile (A2 eqs. 13–19). Every tile is
batched over all leading dims at once, so the Python loops run over tiles only. The normative
text is spec/kernels.py; the Triton kernels (impl/kernels/flash_triton.py) follow the same loop order and share
the autograd wrapper (``run_forward``, ``run_backward``) and the input checks defined here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from impl.nn import RotaryEmbedding

Q_TILE = 64  # rows of Q per tile (B_q); the handout asks for at least 16
K_TILE = 64  # rows of K and V per tile (B_k)
MASKED = -1e6  # added to the scores of keys after the query (A2 §4.2.2 (c))
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_inputs(Q: Tensor, K: Tensor, V: Tensor, who: str) -> None:
    """Clear errors, before any work, for what attention over (..., N, d) tensors cannot take."""
    if not (Q.dtype == K.dtype == V.dtype):
        raise ValueError(f"{who}: Q, K and V must have one dtype, got {Q.dtype}, {K.dtype} and {V.dtype}")
    if not (Q.device == K.device == V.device):
        raise ValueError(f"{who}: Q, K and V must be on one device, got {Q.device}, {K.device} and {V.device}")
    if not Q.dtype.is_floating_point:
        raise ValueError(f"{who}: Q, K and V must be floating point, got {Q.dtype}")
    if min(Q.dim(), K.dim(), V.dim()) < 2:
        raise ValueError(f"{who}: Q, K and V need at least two dims (..., N, d), got shapes "
                         f"{tuple(Q.shape)}, {tuple(K.shape)} and {tuple(V.shape)}")
    if not (Q.shape[:-2] == K.shape[:-2] == V.shape[:-2]) or K.shape[-2] != V.shape[-2] \
            or not (Q.shape[-1] == K.shape[-1] == V.shape[-1]):
        raise ValueError(f"{who}: expected Q (..., N_q, d) and K, V (..., N_k, d) with the same leading dims and d, "
                         f"got {tuple(Q.shape)}, {tuple(K.shape)} and {tuple(V.shape)}")
    if Q.shape[-2] == 0 or K.shape[-2] == 0:
        raise ValueError(f"{who}: N_q and N_k must be at least 1, got N_q={Q.shape[-2]}, N_k={K.shape[-2]}")


def empty_in_order_of(t: Tensor) -> Tensor:
    """An uninitialized dense tensor of ``t``'s shape whose memory runs through the dims in ``t``'s order (by
    stride): for a (..., h, N, d) view of (..., N, h, d) memory, the same kind of view. The kernels write outputs
    and gradients this way, so that the LM, which lays out q, k, v and the output token by token, reads them as
    views instead of copying them (impl/nn.py, MultiHeadSelfAttention)."""
    order = dim_order(t)
    return torch.empty([t.shape[i] for i in order], dtype=t.dtype, device=t.device).permute(
        [order.index(i) for i in range(t.dim())])


def in_order_of(x: Tensor, like: Tensor) -> Tensor:
    """``x`` laid out as ``empty_in_order_of(like)``: itself when it already is, else a copy."""
    order, strides, size = dim_order(like), [0] * x.dim(), 1
    for i in reversed(order):
        strides[i], size = size, size * x.shape[i]
    return x if list(x.stride()) == strides else empty_in_order_of(like).copy_(x)


def dim_order(t: Tensor) -> list[int]:
    """t's dims from the outermost in memory (largest stride) to the innermost; ties keep their order."""
    return sorted(range(t.dim()), key=t.stride, reverse=True)


def causal_bias(q_start: int, n_q: int, k_start: int, n_k: int, device, dtype) -> Tensor:
    """(n_q, n_k): −1e6 where key index > query index, else 0 (query and key positions from 0)."""
    queries = torch.arange(q_start, q_start + n_q, device=device)[:, None]
    keys = torch.arange(k_start, k_start + n_k, device=device)[None, :]
    return torch.where(keys > queries, MASKED, 0.0).to(dtype)


def flash_forward(Q: Tensor, K: Tensor, V: Tensor, is_causal: bool) -> tuple[Tensor, Tensor]:
    """Algorithm 1: O (Q's shape and dtype) and L (Q.shape[:-1], float32; float64 for float64 inputs)."""
    acc = torch.float64 if Q.dtype == torch.float64 else torch.float32  # on-chip buffers: never 16 bits
    n_q, n_k, d = Q.shape[-2], K.shape[-2], Q.shape[-1]
    scale = 1 / math.sqrt(d)
    O = torch.empty(Q.shape, dtype=Q.dtype, device=Q.device)
    L = torch.empty(Q.shape[:-1], dtype=acc, device=Q.device)
    for q0 in range(0, n_q, Q_TILE):
        q = Q[..., q0:q0 + Q_TILE, :].to(acc)  # (..., B_q, d)
        b_q = q.shape[-2]
        o = torch.zeros(q.shape, dtype=acc, device=Q.device)
        l = torch.zeros(q.shape[:-1], dtype=acc, device=Q.device)  # (..., B_q)
        m = torch.full(q.shape[:-1], float("-inf"), dtype=acc, device=Q.device)
        # Causal tile skipping: keys after the tile's last query are masked for every row.
        k_end = min(n_k, q0 + b_q) if is_causal else n_k
        for k0 in range(0, k_end, K_TILE):
            k = K[..., k0:k0 + K_TILE, :].to(acc)  # (..., B_k, d)
            v = V[..., k0:k0 + K_TILE, :].to(acc)
            s = q @ k.transpose(-1, -2) * scale  # (..., B_q, B_k)
            if is_causal and k0 + k.shape[-2] - 1 > q0:  # a diagonal tile: some key is after some query
                s = s + causal_bias(q0, b_q, k0, k.shape[-2], Q.device, acc)
            m_new = torch.maximum(m, s.amax(dim=-1))
            p = torch.exp(s - m_new[..., None])  # P̃: unnormalized, ≤ 1
            alpha = torch.exp(m - m_new)  # rescales what was accumulated under the old max
            l = alpha * l + p.sum(dim=-1)
            o = alpha[..., None] * o + p @ v
            m = m_new
        O[..., q0:q0 + b_q, :] = (o / l[..., None]).to(Q.dtype)
        L[..., q0:q0 + b_q] = m + torch.log(l)
    return O, L


def flash_backward(Q: Tensor, K: Tensor, V: Tensor, O: Tensor, L: Tensor, dO: Tensor, is_causal: bool,
                   out: tuple[Tensor, Tensor, Tensor] | None = None,
                   angles: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """A2 eqs. 13–19, tiled as Algorithm 2: key tiles outside, query tiles inside; dQ accumulates over key tiles.
    Copied into ``out`` (tensors of Q's, K's and V's shapes) when given, as the Triton backward writes there. With
    ``angles``, the cos and sin ((N, d/2) or, for (Z, H, N, d) inputs, (Z, N, d/2)) by which RoPE rotated Q and K:
    dQ and dK rotated back, the gradients with respect to Q and K before the rotation, as the Triton backward gives
    them."""
    acc = L.dtype
    n_q, n_k, d = Q.shape[-2], K.shape[-2], Q.shape[-1]
    scale = 1 / math.sqrt(d)
    D = (dO.to(acc) * O.to(acc)).sum(dim=-1)  # (..., N_q): rowsum(dO ∘ O) = rowsum(P ∘ dP)
    dQ = torch.zeros(Q.shape, dtype=acc, device=Q.device)
    dK = torch.empty(K.shape, dtype=acc, device=Q.device)
    dV = torch.empty(V.shape, dtype=acc, device=Q.device)
    for k0 in range(0, n_k, K_TILE):
        k = K[..., k0:k0 + K_TILE, :].to(acc)  # (..., B_k, d)
        v = V[..., k0:k0 + K_TILE, :].to(acc)
        b_k = k.shape[-2]
        dk = torch.zeros(k.shape, dtype=acc, device=Q.device)
        dv = torch.zeros(v.shape, dtype=acc, device=Q.device)
        # Causal: queries before the tile's first key attend to none of its keys.
        q_begin = (k0 // Q_TILE) * Q_TILE if is_causal else 0
        for q0 in range(q_begin, n_q, Q_TILE):
            q = Q[..., q0:q0 + Q_TILE, :].to(acc)  # (..., B_q, d)
            do = dO[..., q0:q0 + Q_TILE, :].to(acc)
            b_q = q.shape[-2]
            s = q @ k.transpose(-1, -2) * scale  # (..., B_q, B_k)
            if is_causal and k0 + b_k - 1 > q0:
                s = s + causal_bias(q0, b_q, k0, b_k, Q.device, acc)
            p = torch.exp(s - L[..., q0:q0 + b_q, None])  # recomputed, normalized by L
            dv += p.transpose(-1, -2) @ do
            dp = do @ v.transpose(-1, -2)
            ds = p * (dp - D[..., q0:q0 + b_q, None])
            dQ[..., q0:q0 + b_q, :] += ds @ k * scale
            dk += ds.transpose(-1, -2) @ q * scale
        dK[..., k0:k0 + b_k, :] = dk
        dV[..., k0:k0 + b_k, :] = dv
    if angles is not None:  # a rotation's gradient is its transpose: the rotation by the opposite angles
        cos, sin = (a[:, None] if a.dim() == 3 else a for a in angles)  # against (Z, H, N, d/2) pairs
        dQ, dK = (RotaryEmbedding.rotate(gradient, cos, -sin) for gradient in (dQ, dK))
    if out is None:
        return dQ.to(Q.dtype), dK.to(K.dtype), dV.to(V.dtype)
    for gradient, into in zip((dQ, dK, dV), out):
        into.copy_(gradient)
    return out


class FlashAttentionPyTorch(torch.autograd.Function):
    """FlashAttention-2 forward and backward in PyTorch: ``FlashAttentionPyTorch.apply(Q, K, V, is_causal=False)``."""

    @staticmethod
    def forward(ctx, Q: Tensor, K: Tensor, V: Tensor, is_causal: bool = False) -> Tensor:
        check_inputs(Q, K, V, "FlashAttentionPyTorch")
        return run_forward(ctx, flash_forward, Q, K, V, is_causal)

    @staticmethod
    @once_differentiable
    def backward(ctx, dO: Tensor):
        return run_backward(ctx, flash_backward, dO)


def run_forward(ctx, forward, Q: Tensor, K: Tensor, V: Tensor, is_causal) -> Tensor:
    """The autograd Functions' forward around ``forward(Q, K, V, is_causal) -> (O, L)`` (PyTorch or Triton)."""
    ctx.is_causal = bool(is_causal)
    O, L = forward(Q, K, V, ctx.is_causal)
    ctx.save_for_backward(Q, K, V, O, L)  # L: the only (B, N_q) tensor, how the course's tests find it
    return O


def run_backward(ctx, backward, dO: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
    """The autograd Functions' backward around ``backward(Q, K, V, O, L, dO, is_causal) -> (dQ, dK, dV)``."""
    Q, K, V, O, L = ctx.saved_tensors
    return (*backward(Q, K, V, O, L, dO, ctx.is_causal), None)
