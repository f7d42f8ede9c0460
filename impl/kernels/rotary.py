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

TILE_ELEMENTS = 4096  # a program's (rows × d) tile; 256 in the interpreter, so that the CPU tests see partial tiles
INTERPRETED_TILE_ELEMENTS = 256


@triton.jit
def rotate_heads_kernel(X, Y, COS, SIN, n_rows, n_tokens, n_heads, rotated_heads, stride_xt, stride_xh, stride_yt,
                        stride_yh, stride_cz, stride_cn, INVERSE: tl.constexpr, HALF: tl.constexpr,
                        BLOCK_HALF: tl.constexpr, BLOCK_ROWS: tl.constexpr):
    """Rows r = token · n_heads + head (token = z · n_tokens + n), BLOCK_ROWS of them per program, each a head's
    d = 2 · HALF elements loaded as one contiguous (pairs, 2) tile and split into the pairs' two halves. The angles
    are a row's token's; heads from rotated_heads on get cos 1, sin 0 (a copy). In float32, stored in Y's dtype."""
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    token, head = rows // n_heads, rows % n_heads
    z, n = token // n_tokens, token % n_tokens
    k = tl.arange(0, BLOCK_HALF)
    two = tl.arange(0, 2)
    row_ok = rows < n_rows
    mask = row_ok[:, None] & (k < HALF)[None, :]  # (rows, pairs)
    # pair k of a head: adjacent elements 2k and 2k + 1 (A1's RoPE), not k and k + d/2
    pair = (2 * k)[None, :, None] + two[None, None, :]  # (1, pairs, 2)
    x_row = token.to(tl.int64) * stride_xt + head * stride_xh
    y_row = token.to(tl.int64) * stride_yt + head * stride_yh
    x = tl.load(X + x_row[:, None, None] + pair, mask=mask[:, :, None], other=0.0).to(tl.float32)
    even, odd = tl.split(x)  # (rows, pairs) each
    rotate = mask & (head < rotated_heads)[:, None]
    angle = z.to(tl.int64)[:, None] * stride_cz + n.to(tl.int64)[:, None] * stride_cn + k[None, :]
    cos = tl.load(COS + angle, mask=rotate, other=1.0)
    sin = tl.load(SIN + angle, mask=rotate, other=0.0)
    if INVERSE:
        sin = -sin
    y = tl.join(even * cos - odd * sin, even * sin + odd * cos)  # (rows, pairs, 2)
    tl.store(Y + y_row[:, None, None] + pair, y.to(Y.dtype.element_ty), mask=mask[:, :, None])


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
    for t in (x, out):
        if z > 1 and t.stride(0) != n * t.stride(1):
            raise ValueError("rotate_heads needs the sequences of x and out laid out one after another (token stride "
                             "× N = sequence stride), as in the packed projection and its head slices")
    cos3, sin3 = (t if t.dim() == 3 else t[None] for t in (cos, sin))  # (Z or 1, N, d/2)
    if cos3.stride(-1) != 1 or sin3.stride() != cos3.stride():
        cos3, sin3 = cos3.contiguous(), sin3.contiguous()
    stride_cz = cos3.stride(0) if cos3.shape[0] > 1 else 0
    block_half = triton.next_power_of_2(d // 2)
    tile = INTERPRETED_TILE_ELEMENTS if INTERPRETED else TILE_ELEMENTS
    block_rows = max(1, tile // (2 * block_half))
    n_rows = z * n * heads
    rotate_heads_kernel[(triton.cdiv(n_rows, block_rows),)](
        x, out, cos3, sin3, n_rows, n, heads, rotated_heads, x.stride(1), x.stride(2), out.stride(1), out.stride(2),
        stride_cz, cos3.stride(1), INVERSE=inverse, HALF=d // 2, BLOCK_HALF=block_half, BLOCK_ROWS=block_rows)
    return out
