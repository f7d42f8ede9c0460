"""Kernels (handout A2 §3.1.1, §4): a fused Triton RMSNorm and FlashAttention-2 (PyTorch and Triton).

The docstrings are normative. Triton components take CUDA tensors.

(strict) CPU tensors run only through Triton's interpreter (``TRITON_INTERPRET=1`` set before the
implementation's kernels are defined, as the kit does for ``--device cpu`` runs); without it, CPU
tensors raise ValueError naming the device: no silent fallback, so that nobody times an eager path
by mistake. This paragraph is the strict level, and so is every check of a Triton kernel run without
``--device cuda``: the course's kernels run on CUDA tensors only and never use the interpreter; on
CPU tensors a guard and a crash are both its behaviour.

FlashAttention-2. Notation: Q (..., N_q, d), K and V (..., N_k, d); the course's tests use
three dims, Q (B, N_q, d), K and V (B, N_k, d), and that is the case the clauses name. (strict)
More leading dims (batch, heads) work the same way, and L then has shape Q.shape[:-1] (checked
through ``flash_attention``, the multi-head form).
The clauses shared by FlashAttentionPyTorch and FlashAttentionTriton:

- Output O = softmax(S) V with S = Q Kᵀ / √d (A2 eqs. 4–6), computed in tiles with the online
  softmax of Algorithm 1, never materializing an N_q × N_k matrix in memory (tiles of at
  least 16 × 16). O has Q's shape and dtype.
- Causal (``is_causal=True``): query i may attend to key j iff j ≤ i, positions counted from 0
  in both Q and K (top-left aligned, as the course's reference does it, also when N_q ≠ N_k);
  masked scores get −1e6 added (A2 §4.2.2 (c)), so they carry probability 0 in float32.
  ``is_causal`` defaults to False.
- L, the logsumexp of the scaled (and masked) scores, L_i = log Σ_j exp(S_ij) (A2 eq. 12): a
  float32 tensor of shape (B, N_q), in natural-log units (not log₂).
- Saved for the backward: exactly Q, K, V, O and L go to ``ctx.save_for_backward``, so that
  ``O.grad_fn.saved_tensors`` holds exactly one tensor of shape (B, N_q), which is L. This is
  how the course's tests find L: ``[t for t in o.grad_fn.saved_tensors if t.shape == (B, N_q)]``
  must have one element. Nothing of size N_q × N_k is saved (no P, no S).
- Backward from A2 eqs. 13–19 with recomputation: D = rowsum(dO ∘ O), P = exp(S − L),
  dV = Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP − D), dQ = dS K / √d, dK = dSᵀ Q / √d. Gradients flow
  to every input that requires them, with the inputs' dtypes; masked pairs contribute 0.
  Double backward is not supported.
- Precision: scores, the running max and sum, and the O accumulator are float32 whatever the
  input dtype (float16 / bfloat16 inputs are not accumulated in 16 bits); O is cast back once,
  at the end. The flash-attention tolerance rule holds: max |error| against a float64
  reference is at most 2x that of naive PyTorch attention computed in the input dtype, 3x for
  the gradients.
- (strict) Inputs may be non-contiguous (any strides); results equal those of contiguous copies
  (the course passes contiguous tensors).
- (strict) Errors (ValueError, raised before any work, naming what is wrong): Q, K, V of different
  dtypes, or on different devices; fewer than two dims; leading dims that differ between Q, K
  and V; K and V of different lengths; a head dim that differs between Q, K and V; N_q = 0 or
  N_k = 0; a non-floating dtype.
"""

from __future__ import annotations

from typing import Protocol

import torch
from jaxtyping import Float
from torch import Tensor

# This area's components, in the report's order (spec.COMPONENTS is built from them).
__all__ = ["RMSNormTriton", "FlashAttentionPyTorch", "FlashAttentionTriton", "flash_attention"]


class RMSNormTriton(Protocol):
    """RMSNorm (spec/nn.py) fused into one Triton kernel forward and one backward (A2 §3.1.1 operator fusion, §4).

    (strict) Every clause below is the strict level: RMSNormTriton is a kit extra, which the current
    handouts never ask for.

    - The same function and module as spec/nn.py's RMSNorm: y = x / √(mean(x²) + eps) · g over
      the last dim, eps = 1e-5 by default and inside the square root, computed in float32 and
      returned in x's dtype (fp16 inputs of magnitude 10⁴ must not overflow). Any leading shape,
      none and an empty one included; any d_model, not only powers of two. Constructor
      ``(d_model, eps=1e-5, device=None, dtype=None)``; ``weight`` (the gain g, shape (d_model,))
      starts at ones and is the only state-dict entry, so RMSNorm's weights load one to one.
    - Backward: gradients for x (in x's dtype) and for ``weight`` (in weight's dtype); the gain's
      gradient sums dy · x / rms over every row (every leading index). Deterministic: the same
      inputs give bit-identical outputs and gradients on every run (no atomics in the sum).
    - Fused: autograd keeps at most one tensor of x's size for the backward (x itself);
      everything else saved totals at most d_model + one value per row (the gain, 1/rms).
    - x and weight may differ in dtype (fp32 gain, bf16 activations): output and x's gradient
      take x's dtype, the gain's gradient weight's dtype. float32, bfloat16 and float16 only;
      another dtype raises TypeError naming it. Non-contiguous x gives its contiguous copy's results.
    - Errors, naming the problem: x's last dim ≠ d_model (ValueError or RuntimeError naming the
      shapes); x and the gain on different devices (naming the devices); CPU tensors outside
      Triton's interpreter raise ValueError (module docstring).
    """

    weight: torch.nn.Parameter

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None): ...

    def __call__(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]: ...


class FlashAttentionPyTorch(Protocol):
    """FlashAttention-2 as a ``torch.autograd.Function`` in pure PyTorch, no Triton (A2 §4.2.2 (a), flash_backward).

    Used as ``FlashAttentionPyTorch.apply(Q, K, V, is_causal=False)``; the shared clauses of
    this module's docstring apply. Also:

    - Any device PyTorch runs on (the CPU included); float32 inputs.
    - (strict) Also float16 and bfloat16 (computed in float32, held to the precision clause's
      tolerance rule) and float64: float64 inputs are computed in float64 and L is then float64 (so
      that ``torch.autograd.gradcheck`` applies). The course's PyTorch Function is a float32
      reference for the Triton kernel: other dtypes are kit extras.
    - Any N_q, N_k ≥ 1 (not only multiples of the tile size) and any head dim d ≥ 1.
    - Causal tile skipping: key tiles entirely above the diagonal are never computed.
    """

    @staticmethod
    def apply(Q: Float[Tensor, "B N_q d"], K: Float[Tensor, "B N_k d"], V: Float[Tensor, "B N_k d"],
              is_causal: bool = False) -> Float[Tensor, "B N_q d"]: ...


class FlashAttentionTriton(Protocol):
    """FlashAttention-2 as a ``torch.autograd.Function`` with Triton kernels forward and backward (A2 §4.2.2 (b, c)).

    Used as ``FlashAttentionTriton.apply(Q, K, V, is_causal=False)``; the shared clauses of this
    module's docstring apply. Also:

    - Dtypes float16, bfloat16 and float32 (float32 to float32 accuracy: plain TF32 matmuls, with
      10-bit mantissas, miss PyTorch's float32 tolerance); head dims 16 ≤ d ≤ 128, not only
      powers of two; any N_q, N_k ≥ 1, not only multiples of the tile size.
    - (strict) A head dim outside [16, 128], or float64, raises ValueError naming the supported limits.
    - Device: CUDA tensors.
    - (strict) CPU tensors only through Triton's interpreter (module docstring). Outside it, CPU
      tensors raise ValueError naming the device and pointing to FlashAttentionPyTorch: never a
      crash, never a silent fallback.
    """

    @staticmethod
    def apply(Q: Float[Tensor, "B N_q d"], K: Float[Tensor, "B N_k d"], V: Float[Tensor, "B N_k d"],
              is_causal: bool = False) -> Float[Tensor, "B N_q d"]: ...


def flash_attention(q: Float[Tensor, "... h N_q d"], k: Float[Tensor, "... h N_k d"], v: Float[Tensor, "... h N_k d"],
                    is_causal: bool = False) -> Float[Tensor, "... h N_q d"]:
    """Multi-head FlashAttention-2 for the LM: softmax(q kᵀ / √d) v for every (batch, head) pair.

    (strict) Every clause below is the strict level: the multi-head form is a kit extra, the course
    has no such function.

    - q (..., h, N_q, d), k and v (..., h, N_k, d), as MultiHeadSelfAttention holds them after
      splitting heads (spec/nn.py); the leading dims, heads included, must be equal in q, k, v
      (no broadcasting). Returns (..., h, N_q, d) in q's dtype; differentiable in q, k and v.
    - Dispatch by device: CUDA tensors go to FlashAttentionTriton, tensors on any other device
      (the CPU) to FlashAttentionPyTorch. The results, causal convention, errors and tolerance
      are those of the Function it dispatches to; on CUDA, a head dim outside [16, 128] raises
      ValueError.
    - With ``is_causal=True`` it equals the LM's causal attention (key j ≤ query i).
    """
    ...
