"""RoPE over the heads of the packed q|k|v projection, one Triton pass (A1 §3.5.3's rotation, A2 §4 Triton).

The LM's attention with the kernels switched on (impl/kernels/multihead.py, ``rotary_flash_attention``) takes
the projection's output as one (Z, N, h + 2 h_kv, d) tensor. ``rotate_heads`` rotates the pairs (x₂ₖ, x₂ₖ₊₁) of
its first ``rotated_heads`` heads (q's and k's) by each token's angles and copies the rest (v's), reading and
writing every element once; with ``inverse`` it rotates by the opposite angles, which is the rotation's gradient
(a rotation's transpose is its inverse), and may write in place. Rotating the gradient of all three where the
attention backward wrote them, in one buffer, is the point: torch.compile's backward of the split projection
otherwise concatenates dQ, dK and dV in one slow pass (bench/results/h200-lm-step-graphs-head.md).

On CUDA (or under TRITON_INTERPRET=1, for the CPU tests) the kernel runs; elsewhere the same arithmetic in
PyTorch (impl.nn.RotaryEmbedding.rotate), as the PyTorch FlashAttention-2 stands in for the Triton one.
"""

from __future__ import annotations

import triton
import triton.language as tl
from torch import Tensor

from impl.kernels.rmsnorm import INTERPRETED
from impl.nn import RotaryEmbedding

PAIRS_PER_PROGRAM = 1024  # a token's (heads × d/2) pairs in blocks of this many; 64 in the interpreter
INTERPRETED_PAIRS_PER_PROGRAM = 64


@triton.jit
def rotate_heads_kernel(X, Y, COS, SIN, n_tokens, n_heads, rotated_heads, half,
                        stride_xz, stride_xn, stride_xh, stride_yz, stride_yn, stride_yh, stride_cz, stride_cn,
                        INVERSE: tl.constexpr, BLOCK: tl.constexpr):
    """Program (row, b): token row = z · n_tokens + n, pairs b·BLOCK … of its heads (pair p: head p // half,
    angle p % half); the last dim is contiguous. In float32, stored in Y's dtype."""
    row = tl.program_id(0)
    z, n = row // n_tokens, row % n_tokens
    pairs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    head, k = pairs // half, pairs % half
    valid = head < n_heads
    first, second = 2 * k, 2 * k + 1  # pair k: adjacent elements (A1's RoPE), not k and k + d/2
    x = X + z.to(tl.int64) * stride_xz + n.to(tl.int64) * stride_xn + head * stride_xh
    y = Y + z.to(tl.int64) * stride_yz + n.to(tl.int64) * stride_yn + head * stride_yh
    even = tl.load(x + first, mask=valid, other=0.0).to(tl.float32)
    odd = tl.load(x + second, mask=valid, other=0.0).to(tl.float32)
    rotate = valid & (head < rotated_heads)
    angle = z.to(tl.int64) * stride_cz + n.to(tl.int64) * stride_cn + k
    cos = tl.load(COS + angle, mask=rotate, other=1.0)  # heads past rotated_heads: cos 1, sin 0, a copy
    sin = tl.load(SIN + angle, mask=rotate, other=0.0)
    if INVERSE:
        sin = -sin
    tl.store(y + first, (even * cos - odd * sin).to(Y.dtype.element_ty), mask=valid)
    tl.store(y + second, (even * sin + odd * cos).to(Y.dtype.element_ty), mask=valid)


def rotate_heads(x: Tensor, cos: Tensor, sin: Tensor, rotated_heads: int, out: Tensor, inverse: bool = False
                 ) -> Tensor:
    """``out`` (x's shape (Z, N, heads, d)) = x with heads 0 … rotated_heads − 1 rotated by the angles whose cos
    and sin are (N, d/2) or (Z, N, d/2) float32, the other heads copied; ``out`` may be ``x``. Returns ``out``."""
    if x.stride(-1) != 1 or out.stride(-1) != 1:
        raise ValueError("rotate_heads needs the head dim contiguous (stride 1) in x and out")
    if x.device.type != "cuda" and not INTERPRETED:
        angles = (t[..., None, :] for t in (cos, -sin if inverse else sin))  # (…, N, 1, d/2): every head
        out[..., :rotated_heads, :] = RotaryEmbedding.rotate(x[..., :rotated_heads, :], *angles)
        if out is not x:
            out[..., rotated_heads:, :] = x[..., rotated_heads:, :]
        return out
    z, n, heads, d = x.shape
    cos3, sin3 = (t if t.dim() == 3 else t[None] for t in (cos, sin))  # (Z or 1, N, d/2)
    if cos3.stride(-1) != 1 or sin3.stride() != cos3.stride():
        cos3, sin3 = cos3.contiguous(), sin3.contiguous()
    stride_cz = cos3.stride(0) if cos3.shape[0] > 1 else 0
    block = INTERPRETED_PAIRS_PER_PROGRAM if INTERPRETED else PAIRS_PER_PROGRAM
    grid = (z * n, triton.cdiv(heads * d // 2, block))
    rotate_heads_kernel[grid](x, out, cos3, sin3, n, heads, rotated_heads, d // 2, *x.stride()[:3],
                              *out.stride()[:3], stride_cz, cos3.stride(1), INVERSE=inverse, BLOCK=block)
    return out
