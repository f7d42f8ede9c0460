"""The kernels' mutants (spec/kernels.py): RMSNorm in Triton and FlashAttention-2.

RMSNormTriton mutants keep the reference's input checks and, like a fused kernel, save only x and the gain for
the backward (which recomputes), so that each one is rejected by the test of the clause it breaks, not by the
saved-tensor or bad-input tests. Python-level: the math that is wrong is written in torch; the rest is the
reference's Triton kernel.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial

import torch

import impl as reference
import impl.kernels.flash_triton as reference_flash_triton
import impl.kernels.rmsnorm as reference_rmsnorm
from impl.kernels.flash_pytorch import check_inputs as check_flash_inputs
from tests.kit.mutants.common import Mutant


class _RecomputedRMSNorm(torch.autograd.Function):
    """y = forward_fn(x, g, eps), saving x and g only; the backward is backward_fn(x, g, eps, dy) -> (dx, dg)."""

    @staticmethod
    def forward(ctx, x, weight, eps, forward_fn, backward_fn):
        ctx.save_for_backward(x, weight)
        ctx.eps, ctx.backward_fn = eps, backward_fn
        return forward_fn(x, weight, eps)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        dx, dw = ctx.backward_fn(x, weight, ctx.eps, dy)
        return dx, dw, None, None, None


def _autograd_grads(forward_fn, x, weight, eps, dy):
    """(dx, dg) of forward_fn by autograd, recomputed from x and g."""
    with torch.enable_grad():
        x, weight = x.detach().requires_grad_(True), weight.detach().requires_grad_(True)
        return torch.autograd.grad(forward_fn(x, weight, eps), (x, weight), dy)


def _rmsnorm_eps_outside_sqrt(x, weight, eps):
    x32 = x.float()
    return (x32 / (x32.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight.float()).to(x.dtype)


def _rmsnorm_in_input_dtype(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.to(x.dtype)


def _rmsnorm_mean_over_padded_width(x, weight, eps):
    padded = 1 << (x.shape[-1] - 1).bit_length()  # the kernel's power-of-two block, masked lanes counted
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).sum(-1, keepdim=True) / padded + eps) * weight.float()).to(x.dtype)


def _gain_grad_first_row(x, weight, eps, dy):
    dx, _ = _autograd_grads(reference_rmsnorm.rmsnorm, x, weight, eps, dy)
    d = x.shape[-1]  # dg from the first row alone: the per-row terms never summed
    _, dw = _autograd_grads(reference_rmsnorm.rmsnorm, x.reshape(-1, d)[:1], weight, eps, dy.reshape(-1, d)[:1])
    return dx, dw


def _rstd_held_constant(x, weight, eps, dy):
    _, dw = _autograd_grads(reference_rmsnorm.rmsnorm, x, weight, eps, dy)
    rstd = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)  # dx = dy·g/rms: no term through mean(x²)
    return (dy.float() * weight.float() * rstd).to(x.dtype), dw


class RMSNormTritonVariant(reference.RMSNormTriton):
    """The reference's checks, then ``forward_fn`` and ``backward_fn``; each mutant below swaps exactly one."""

    forward_fn = staticmethod(reference_rmsnorm.rmsnorm)
    backward_fn = staticmethod(partial(_autograd_grads, reference_rmsnorm.rmsnorm))

    def forward(self, x):
        x, weight = reference_rmsnorm.checked_inputs(x, self.weight)
        return _RecomputedRMSNorm.apply(x, weight, self.eps, self.forward_fn, self.backward_fn)


def _grads_of(forward_fn):
    return staticmethod(partial(_autograd_grads, forward_fn))


class RMSNormTritonEpsOutsideSqrt(RMSNormTritonVariant):
    forward_fn, backward_fn = staticmethod(_rmsnorm_eps_outside_sqrt), _grads_of(_rmsnorm_eps_outside_sqrt)


class RMSNormTritonInputDtype(RMSNormTritonVariant):
    forward_fn, backward_fn = staticmethod(_rmsnorm_in_input_dtype), _grads_of(_rmsnorm_in_input_dtype)


class RMSNormTritonPaddedMean(RMSNormTritonVariant):
    forward_fn, backward_fn = staticmethod(_rmsnorm_mean_over_padded_width), _grads_of(_rmsnorm_mean_over_padded_width)


class RMSNormTritonGainGradFirstRow(RMSNormTritonVariant):
    backward_fn = staticmethod(_gain_grad_first_row)


class RMSNormTritonRstdHeldConstant(RMSNormTritonVariant):
    backward_fn = staticmethod(_rstd_held_constant)



# FlashAttention-2 (spec/kernels.py). The PyTorch mutants are Algorithm 1 and its backward written out
# plainly (16 x 16 tiles) with knobs, each mutant turning exactly one; they keep the reference's input
# checks. The Triton mutants wrap the reference's kernels (impl/kernels/flash_triton.py flash_forward and
# flash_backward) and change what goes in, what is saved or what the backward is told.


def _flash_variant(name: str, *, scaled: bool = True, causal_offset: int = 0, lse_is_max: bool = False,
                   accumulate_dq: bool = True, accumulate_in_input_dtype: bool = False,
                   save_probabilities: bool = False) -> type[torch.autograd.Function]:
    """FlashAttention-2 in PyTorch with knobs. causal_offset: key j is masked where j > i + causal_offset."""
    tile = 16

    def scores(q, k, q0, k0, d, is_causal):
        s = q @ k.transpose(-1, -2) * (1 / math.sqrt(d) if scaled else 1.0)
        if is_causal:
            queries = torch.arange(q0, q0 + q.shape[-2], device=q.device)[:, None]
            keys = torch.arange(k0, k0 + k.shape[-2], device=q.device)[None, :]
            s = s + torch.where(keys > queries + causal_offset, -1e6, 0.0).to(s.dtype)
        return s

    def forward(ctx, Q, K, V, is_causal=False):
        check_flash_inputs(Q, K, V, "FlashAttentionPyTorch")
        acc = torch.float64 if Q.dtype == torch.float64 else torch.float32
        keep = Q.dtype if accumulate_in_input_dtype else acc  # the dtype o and l are held in between tiles
        d = Q.shape[-1]
        O = torch.empty_like(Q)
        L = torch.empty(Q.shape[:-1], dtype=acc, device=Q.device)
        for q0 in range(0, Q.shape[-2], tile):
            q = Q[..., q0:q0 + tile, :].to(acc)
            o = torch.zeros(q.shape, dtype=keep, device=Q.device)
            l = torch.zeros(q.shape[:-1], dtype=keep, device=Q.device)
            m = torch.full(q.shape[:-1], float("-inf"), dtype=acc, device=Q.device)
            for k0 in range(0, K.shape[-2], tile):
                s = scores(q, K[..., k0:k0 + tile, :].to(acc), q0, k0, d, is_causal)
                m_new = torch.maximum(m, s.amax(-1))
                p, alpha = torch.exp(s - m_new[..., None]), torch.exp(m - m_new)
                l = (alpha * l + p.sum(-1)).to(keep)
                o = (alpha[..., None] * o + p @ V[..., k0:k0 + tile, :].to(acc)).to(keep)
                m = m_new
            O[..., q0:q0 + tile, :] = (o / l[..., None]).to(Q.dtype)
            L[..., q0:q0 + tile] = m if lse_is_max else m + torch.log(l.to(acc))
        saved = (Q, K, V, O, L)
        if save_probabilities:  # P (B, N_q, N_k) kept for the backward instead of recomputed
            saved += (torch.exp(scores(Q.to(acc), K.to(acc), 0, 0, d, is_causal) - L[..., None]),)
        ctx.save_for_backward(*saved)
        ctx.is_causal = is_causal
        return O

    def backward(ctx, dO):
        Q, K, V, O, L, *P = ctx.saved_tensors
        acc, d = L.dtype, Q.shape[-1]
        scale = 1 / math.sqrt(d) if scaled else 1.0
        D = (dO.to(acc) * O.to(acc)).sum(-1)
        dQ = torch.zeros(Q.shape, dtype=acc, device=Q.device)
        dK, dV = torch.zeros(K.shape, dtype=acc, device=Q.device), torch.zeros(V.shape, dtype=acc, device=Q.device)
        for k0 in range(0, K.shape[-2], tile):
            k, v = K[..., k0:k0 + tile, :].to(acc), V[..., k0:k0 + tile, :].to(acc)
            for q0 in range(0, Q.shape[-2], tile):
                q, do = Q[..., q0:q0 + tile, :].to(acc), dO[..., q0:q0 + tile, :].to(acc)
                if P:
                    p = P[0][..., q0:q0 + tile, k0:k0 + tile]
                else:
                    p = torch.exp(scores(q, k, q0, k0, d, ctx.is_causal) - L[..., q0:q0 + tile, None])
                dV[..., k0:k0 + tile, :] += p.transpose(-1, -2) @ do
                ds = p * (do @ v.transpose(-1, -2) - D[..., q0:q0 + tile, None])
                if accumulate_dq:
                    dQ[..., q0:q0 + tile, :] += ds @ k * scale
                else:  # each key tile overwrites the last: only the last key tile's share survives
                    dQ[..., q0:q0 + tile, :] = ds @ k * scale
                dK[..., k0:k0 + tile, :] += ds.transpose(-1, -2) @ q * scale
        return dQ.to(Q.dtype), dK.to(K.dtype), dV.to(V.dtype), None

    return type(name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward),
                                                   "__module__": __name__})


FlashUnscaled = _flash_variant("FlashUnscaled", scaled=False)
FlashStrictlyCausal = _flash_variant("FlashStrictlyCausal", causal_offset=-1)
FlashPeeksOneAhead = _flash_variant("FlashPeeksOneAhead", causal_offset=1)
FlashLseIsMax = _flash_variant("FlashLseIsMax", lse_is_max=True)
FlashDqLastKeyTile = _flash_variant("FlashDqLastKeyTile", accumulate_dq=False)
FlashInputDtypeAccumulators = _flash_variant("FlashInputDtypeAccumulators", accumulate_in_input_dtype=True)
FlashSavesProbabilities = _flash_variant("FlashSavesProbabilities", save_probabilities=True)


def _triton_variant(name: str, *, q_factor=lambda d: 1.0, lse_factor: float = 1.0, backward_causal: bool | None = None,
                    cast_to_q_dtype: bool = False) -> type[torch.autograd.Function]:
    """The reference's Triton kernels, fed Q · q_factor(d), saving L · lse_factor, or told another causality."""

    def forward(ctx, Q, K, V, is_causal=False):
        if cast_to_q_dtype:  # mixed dtypes silently made to agree instead of rejected
            K, V = K.to(Q.dtype), V.to(Q.dtype)
        reference_flash_triton.check_triton_inputs(Q, K, V)
        O, L = reference_flash_triton.flash_forward(Q * q_factor(Q.shape[-1]), K, V, bool(is_causal))
        ctx.save_for_backward(Q, K, V, O, L * lse_factor)
        ctx.is_causal = bool(is_causal)
        return O

    def backward(ctx, dO):
        Q, K, V, O, L = ctx.saved_tensors
        factor = q_factor(Q.shape[-1])
        causal = ctx.is_causal if backward_causal is None else backward_causal
        dQ, dK, dV = reference_flash_triton.flash_backward(Q * factor, K, V, O, L / lse_factor, dO, causal)
        return dQ * factor, dK, dV, None

    return type(name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward),
                                                   "__module__": __name__})


FlashTritonUnscaled = _triton_variant("FlashTritonUnscaled", q_factor=math.sqrt)  # softmax(QKᵀ)V
FlashTritonLseInLog2 = _triton_variant("FlashTritonLseInLog2", lse_factor=1 / math.log(2))  # the kernel's log₂ units
FlashTritonBackwardNotCausal = _triton_variant("FlashTritonBackwardNotCausal", backward_causal=False)
FlashTritonCastsMixedDtypes = _triton_variant("FlashTritonCastsMixedDtypes", cast_to_q_dtype=True)


def _flash_attention_heads_as_positions(q, k, v, is_causal=False):
    # (..., h, N, d) read as (..., N, h, d): each position attends over the heads instead of the sequence.
    t = (x.transpose(-3, -2) for x in (q, k, v))
    return reference.flash_attention(*t, is_causal).transpose(-3, -2)


def _flash_attention_ignores_causal(q, k, v, is_causal=False):
    return reference.flash_attention(q, k, v, False)


MUTANTS: list[Mutant] = [
    Mutant("rmsnorm_triton_gain_grad_first_row", "RMSNormTriton", "the gain's gradient from the first row only, "
           "not summed over every row", RMSNormTritonGainGradFirstRow),
    Mutant("rmsnorm_triton_eps_outside_sqrt", "RMSNormTriton",
           "x / (√mean(x²) + eps) instead of x / √(mean(x²) + eps)", RMSNormTritonEpsOutsideSqrt),
    Mutant("rmsnorm_triton_no_fp32", "RMSNormTriton", "computed in the input dtype: fp16 x² overflows",
           RMSNormTritonInputDtype),
    Mutant("rmsnorm_triton_padded_mean", "RMSNormTriton", "mean(x²) over the power-of-two block: masked lanes "
           "counted for widths that are not powers of two", RMSNormTritonPaddedMean),
    Mutant("rmsnorm_triton_rstd_held_constant", "RMSNormTriton", "x's gradient dy·g/rms: 1/rms treated as a constant",
           RMSNormTritonRstdHeldConstant),
    Mutant("flash_unscaled", "FlashAttentionPyTorch", "scores QKᵀ without the 1/√d scale", FlashUnscaled),
    Mutant("flash_strictly_causal", "FlashAttentionPyTorch", "causal mask key j < i: no query sees its own key",
           FlashStrictlyCausal),
    Mutant("flash_peeks_one_ahead", "FlashAttentionPyTorch", "causal mask key j ≤ i + 1: reads the next key",
           FlashPeeksOneAhead),
    Mutant("flash_lse_is_max", "FlashAttentionPyTorch", "saves the running max m as L instead of m + log l",
           FlashLseIsMax),
    Mutant("flash_dq_last_key_tile", "FlashAttentionPyTorch", "dQ not accumulated across key tiles: the last tile's "
           "share overwrites the others", FlashDqLastKeyTile),
    # strict: 16-bit inputs to the PyTorch FlashAttention are a kit extra
    Mutant("flash_input_dtype_accumulators", "FlashAttentionPyTorch", "O and l held in the input dtype between key "
           "tiles (16-bit accumulators)", FlashInputDtypeAccumulators, level="strict"),
    Mutant("flash_saves_probabilities", "FlashAttentionPyTorch", "saves the N_q × N_k probabilities P for the "
           "backward instead of recomputing them", FlashSavesProbabilities),
    Mutant("flash_triton_unscaled", "FlashAttentionTriton", "scores QKᵀ without the 1/√d scale", FlashTritonUnscaled),
    Mutant("flash_triton_lse_in_log2", "FlashAttentionTriton", "L saved in log₂ units (the exp2 kernel's), not natural "
           "log", FlashTritonLseInLog2),
    Mutant("flash_triton_backward_not_causal", "FlashAttentionTriton", "the backward ignores is_causal: masked pairs "
           "get gradients", FlashTritonBackwardNotCausal),
    Mutant("flash_triton_casts_mixed_dtypes", "FlashAttentionTriton", "K and V silently cast to Q's dtype instead of a "
           "ValueError", FlashTritonCastsMixedDtypes),
    # strict: the multi-head flash_attention is a kit extra (both of its mutants)
    Mutant("flash_attention_heads_as_positions", "flash_attention", "(..., h, N, d) read as (..., N, h, d): attention "
           "over heads", _flash_attention_heads_as_positions, level="strict"),
    Mutant("flash_attention_ignores_causal", "flash_attention", "is_causal ignored: always full attention",
           _flash_attention_ignores_causal, level="strict"),
]
# The kit's mutant runs are on a CPU, where Triton kernels run on CPU tensors through the interpreter: a kit extra,
# so the strict level's (a GPU run checks the same mistakes at the course level). RMSNormTriton is a kit extra anyway.
MUTANTS = [replace(m, level="strict") if m.component in ("RMSNormTriton", "FlashAttentionTriton") else m for m in MUTANTS]
