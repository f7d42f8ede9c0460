"""RoPE over the heads of the packed q|k|v projection, one Triton pass (A1 §3.5.3's rotation, A2 §4 Triton).

The LM's attention with the kernels switched on (impl/kernels/multihead.py, ``rotary_flash_attention``) takes
the projection's output as one (Z, N, h + 2 h_kv, d) tensor. ``rotate_heads`` rotates the pairs (x₂ₖ, x₂ₖ₊₁) of
its first ``rotated_heads`` heads (q's and k's) by each token's angles and copies the rest (v's), reading and
writing every element once. The rotation's gradient takes no pass: the FlashAttention-2 backward kernels store dQ and
dK rotated back (impl/kernels/flash_triton.py, ``rotate_back``), into one packed gradient, where torch.compile's
backward of the split projection would concatenate dQ, dK and dV in one slow pass
(bench/results/h200-lm-step-graphs-head.md).

The kernel reads and writes a pair as one machine word (two bfloat16 in an int32, two float32 in an int64): every
load and store is then a plain contiguous vector. Two earlier layouts, each element loaded with its partner by a
gather or split out of a (pairs, 2) tile, ran at a third to a fifth of a copy's speed on an H200
(bench/results/h200-lm-step-rope.md).

On CUDA (or under TRITON_INTERPRET=1, for the CPU tests) the kernel runs; elsewhere the same arithmetic in
PyTorch (impl.nn.RotaryEmbedding.rotate), as the PyTorch FlashAttention-2 stands in for the Triton one.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from impl.kernels.rmsnorm import INTERPRETED
from impl.nn import RotaryEmbedding

TILE_WORDS = 4096  # a program's (tokens × heads × pairs) tile; 128 in the interpreter: the CPU tests see partial tiles
INTERPRETED_TILE_WORDS = 128
# By element type: the integer type of a pair's word, and the kernel's name of the element type
WORDS = {torch.bfloat16: (torch.int32, "bf16"), torch.float16: (torch.int32, "fp16"),
         torch.float32: (torch.int64, "fp32")}


@triton.jit
def unpack_pair(word, ELEMENT: tl.constexpr):
    """The word's two elements in float32: the even one is its low half (little-endian memory)."""
    if ELEMENT == "fp32":
        even = word.to(tl.int32).to(tl.float32, bitcast=True)
        odd = (word >> 32).to(tl.int32).to(tl.float32, bitcast=True)
    else:
        dtype: tl.constexpr = tl.bfloat16 if ELEMENT == "bf16" else tl.float16
        even = word.to(tl.int16).to(dtype, bitcast=True).to(tl.float32)
        odd = (word >> 16).to(tl.int16).to(dtype, bitcast=True).to(tl.float32)
    return even, odd


@triton.jit
def pack_pair(even, odd, ELEMENT: tl.constexpr):
    """The word of two float32 values rounded to the element type (round to nearest even, as Tensor.to)."""
    if ELEMENT == "fp32":
        low = even.to(tl.uint32, bitcast=True).to(tl.int64)  # zero-extended
        word = low | (odd.to(tl.int32, bitcast=True).to(tl.int64) << 32)
    else:
        dtype: tl.constexpr = tl.bfloat16 if ELEMENT == "bf16" else tl.float16
        low = even.to(dtype).to(tl.uint16, bitcast=True).to(tl.int32)  # zero-extended
        word = low | (odd.to(dtype).to(tl.int16, bitcast=True).to(tl.int32) << 16)
    return word


@triton.jit
def rotate_heads_kernel(X, Y, COS, SIN, n_rows, n_tokens, n_heads, rotated_heads, stride_xt, stride_yt, stride_cz,
                        stride_cn, ELEMENT: tl.constexpr, HALF_D: tl.constexpr,
                        PAIRS: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_HEADS: tl.constexpr):
    """X and Y are words, a pair each: a row is a token's heads, n_heads · HALF_D words one after another (row =
    z · n_tokens + n); a program takes a (BLOCK_ROWS × BLOCK_HEADS × PAIRS) tile of them, PAIRS = HALF_D rounded up
    to a power of two. The angles of a (token, pair) are loaded once for the tile's heads. Heads from rotated_heads
    on get cos 1, sin 0 (a copy). In float32, stored in the element type."""
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    heads = tl.program_id(1) * BLOCK_HEADS + tl.arange(0, BLOCK_HEADS)
    pairs = tl.arange(0, PAIRS)
    angle_mask = (rows < n_rows)[:, None] & (pairs < HALF_D)[None, :]
    mask = angle_mask[:, None, :] & (heads < n_heads)[None, :, None]
    words = (heads * HALF_D)[None, :, None] + pairs[None, None, :]
    x = tl.load(X + (rows.to(tl.int64) * stride_xt)[:, None, None] + words, mask=mask, other=0)
    z, n = rows // n_tokens, rows % n_tokens
    angle = (z.to(tl.int64) * stride_cz + n.to(tl.int64) * stride_cn)[:, None] + pairs[None, :]
    cos = tl.load(COS + angle, mask=angle_mask, other=1.0)[:, None, :]
    sin = tl.load(SIN + angle, mask=angle_mask, other=0.0)[:, None, :]
    rotate = (heads < rotated_heads)[None, :, None]
    cos = tl.where(rotate, cos, 1.0)
    sin = tl.where(rotate, sin, 0.0)
    even, odd = unpack_pair(x, ELEMENT)
    y = pack_pair(even * cos - odd * sin, even * sin + odd * cos, ELEMENT)
    tl.store(Y + (rows.to(tl.int64) * stride_yt)[:, None, None] + words, y, mask=mask)


def rotate_heads(x: Tensor, cos: Tensor, sin: Tensor, rotated_heads: int, out: Tensor) -> Tensor:
    """``out`` (x's shape (Z, N, heads, d), not x) = x with heads 0 … rotated_heads − 1 rotated by the angles whose
    cos and sin are (N, d/2) or (Z, N, d/2) float32, the other heads copied. Returns ``out``."""
    if x.stride(-1) != 1 or out.stride(-1) != 1:
        raise ValueError("rotate_heads needs the head dim contiguous (stride 1) in x and out")
    if x.device.type != "cuda" and not INTERPRETED:
        angles = (t[..., None, :] for t in (cos, sin))  # (…, N, 1, d/2): every head
        out[..., :rotated_heads, :] = RotaryEmbedding.rotate(x[..., :rotated_heads, :], *angles)
        out[..., rotated_heads:, :] = x[..., rotated_heads:, :]
        return out
    if x.dtype not in WORDS:
        raise ValueError(f"rotate_heads' kernel takes bfloat16, float16 or float32 tensors, got {x.dtype}")
    return launch_rotation(x, cos, sin, rotated_heads, out, INTERPRETED_TILE_WORDS if INTERPRETED else TILE_WORDS)


def launch_rotation(x: Tensor, cos: Tensor, sin: Tensor, rotated_heads: int, out: Tensor, tile: int) -> Tensor:
    """rotate_heads' kernel, its programs' tiles of about ``tile`` words."""
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
    word, element = WORDS[x.dtype]
    x_words, out_words = x.view(word), out.view(word)  # (Z, N, heads, d/2): a pair a word
    half_d, pairs = d // 2, triton.next_power_of_2(d // 2)
    # heads: the largest power of two that divides them (no masked-off heads) and fits the tile
    block_heads = min(heads & -heads, max(1, tile // pairs))
    block_rows = max(1, tile // (pairs * block_heads))
    n_rows = z * n
    grid = (triton.cdiv(n_rows, block_rows), triton.cdiv(heads, block_heads))
    rotate_heads_kernel[grid](
        x_words, out_words, cos3, sin3, n_rows, n, heads, rotated_heads, x_words.stride(1),
        out_words.stride(1), stride_cz, cos3.stride(1), ELEMENT=element, HALF_D=half_d, PAIRS=pairs,
        BLOCK_ROWS=block_rows, BLOCK_HEADS=block_heads, num_warps=8)
    return out
