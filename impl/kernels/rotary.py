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

TILE_ELEMENTS = 4096  # a program's (tokens × elements) tile; 256 in the interpreter, so the CPU tests see partial tiles
INTERPRETED_TILE_ELEMENTS = 256


@triton.jit
def rotate_heads_kernel(X, Y, COS, SIN, n_rows, n_tokens, row_elements, rotated_elements, stride_xt, stride_yt,
                        stride_cz, stride_cn, INVERSE: tl.constexpr, D: tl.constexpr, BLOCK_ROWS: tl.constexpr,
                        BLOCK_COLS: tl.constexpr):
    """A row is a token's heads, row_elements = heads · D contiguous elements (row = z · n_tokens + n); a program
    takes a (BLOCK_ROWS × BLOCK_COLS) tile of them. Element c's pair partner is c xor 1 (pairs are adjacent,
    x₂ₖ and x₂ₖ₊₁, A1's RoPE), loaded a second time from the same cache lines rather than shuffled in registers:
    both loads are plain coalesced vectors. Elements from rotated_elements on get cos 1, sin 0 (a copy). In
    float32, stored in Y's dtype; a tile holds whole pairs, so Y may be X."""
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    cols = tl.program_id(1) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    row_ok = rows < n_rows
    mask = row_ok[:, None] & (cols < row_elements)[None, :]
    x_row = (rows.to(tl.int64) * stride_xt)[:, None]
    x = tl.load(X + x_row + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    partner = tl.load(X + x_row + (cols ^ 1)[None, :], mask=mask, other=0.0).to(tl.float32)
    rotate = mask & (cols < rotated_elements)[None, :]
    z, n = rows // n_tokens, rows % n_tokens
    angle = (z.to(tl.int64) * stride_cz + n.to(tl.int64) * stride_cn)[:, None] + ((cols % D) // 2)[None, :]
    cos = tl.load(COS + angle, mask=rotate, other=1.0)
    sin = tl.load(SIN + angle, mask=rotate, other=0.0)
    # (x₂ₖ, x₂ₖ₊₁) -> (x₂ₖ cos − x₂ₖ₊₁ sin, x₂ₖ sin + x₂ₖ₊₁ cos): the partner's sine term is − for even elements
    sign = tl.where(cols % 2 == 0, -1.0, 1.0)
    if INVERSE:
        sign = -sign
    y = x * cos + sign[None, :] * partner * sin
    tl.store(Y + (rows.to(tl.int64) * stride_yt)[:, None] + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)


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
        if t.stride(2) != d or (z > 1 and t.stride(0) != n * t.stride(1)):
            raise ValueError("rotate_heads needs each token's heads one after another (head stride = d) and the "
                             "sequences of x and out one after another (token stride × N = sequence stride), as in "
                             "the packed projection and its head slices")
    cos3, sin3 = (t if t.dim() == 3 else t[None] for t in (cos, sin))  # (Z or 1, N, d/2)
    if cos3.stride(-1) != 1 or sin3.stride() != cos3.stride():
        cos3, sin3 = cos3.contiguous(), sin3.contiguous()
    stride_cz = cos3.stride(0) if cos3.shape[0] > 1 else 0
    row_elements = heads * d
    tile = INTERPRETED_TILE_ELEMENTS if INTERPRETED else TILE_ELEMENTS
    # columns: the largest power of two that divides a row (no masked-off tail), unless that is too narrow
    block_cols = min(tile, row_elements & -row_elements)
    if block_cols < 64:
        block_cols = min(tile, triton.next_power_of_2(row_elements))
    block_rows = max(1, tile // block_cols)
    n_rows = z * n
    grid = (triton.cdiv(n_rows, block_rows), triton.cdiv(row_elements, block_cols))
    rotate_heads_kernel[grid](
        x, out, cos3, sin3, n_rows, n, row_elements, rotated_heads * d, x.stride(1), out.stride(1), stride_cz,
        cos3.stride(1), INVERSE=inverse, D=d, BLOCK_ROWS=block_rows, BLOCK_COLS=block_cols, num_warps=8)
    return out
