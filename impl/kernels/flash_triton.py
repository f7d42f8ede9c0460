"""FlashAttention-2 in Triton: a forward kernel and a three-kernel backward (handout A2 §4.2.2, §4.3 leaderboard).

Same function and conventions as impl/kernels/flash_pytorch.py (normative text: spec/kernels.py).
Written for Hopper from the start:

- Forward (Algorithm 1): one program per (query tile, batch·head); the loop over key tiles is
  split in two, the tiles every query of the block may see (no index comparison at all) and the
  diagonal / last partial tile (one comparison). Causal tile skipping: the loop stops at the
  block's last query, so a causal forward does half the work. Scores are kept in log₂ units:
  log₂e is folded into the 1/√d scale, so the softmax uses exp2, and L is converted back to
  natural log once per row when it is stored.
- Backward (A2 eqs. 13–19, Algorithm 2 without atomics): a preprocess kernel for
  D = rowsum(dO ∘ O); a dK/dV kernel, one program per key tile looping over query tiles; a dQ
  kernel, one program per query tile looping over key tiles. P is recomputed in both (the
  leaderboard's "two passes" idea); each kernel masks only its diagonal and boundary tiles.
- On-chip accumulators (O, m, l, dQ, dK, dV) are float32; P and dS are cast to the input dtype
  for the tensor-core matmuls. float32 inputs use IEEE float32 dots (TF32 is not accurate
  enough for PyTorch's float32 tolerance) with one fixed small-tile configuration.
- Batch and heads share the grid's second axis; 4-D (Z, H, N, d) inputs are read through their
  strides, so the LM's head-split views need no copy. Causal programs run the longest rows first.
- Tile sizes and launch parameters are autotuned, keyed on N_q, N_k, d and causality (and the
  dtypes); results are cached on disk (``cache_results``). ``CS336_FLASH_AUTOTUNE=0`` skips the
  tuning and uses one fixed configuration per kernel (quick compiles, for test grids). Under
  ``TRITON_INTERPRET=1`` (CPU tests) the kernels run in Triton's interpreter with small,
  deliberately unequal tiles, so the diagonal logic for B_q ≠ B_k is exercised on a CPU.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

from impl.kernels.flash_pytorch import check_inputs, empty_in_order_of, run_backward, run_forward

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MIN_HEAD_DIM, MAX_HEAD_DIM = 16, 128
MAX_GRID_Y = 65_535  # CUDA's limit on the grid's second axis (batch · heads per launch)
LOG2E = 1.4426950408889634


# ---------------------------------------------------------------------------------------------
# Kernels


@triton.jit
def load_tile(block, CHECK_ROWS: tl.constexpr, EVEN_D: tl.constexpr):
    """A (rows, HEAD_DIM) tile; rows past the end and padding columns (d < HEAD_DIM) read as 0."""
    if CHECK_ROWS:
        if EVEN_D:
            x = tl.load(block, boundary_check=(0,), padding_option="zero")
        else:
            x = tl.load(block, boundary_check=(0, 1), padding_option="zero")
    else:
        if EVEN_D:
            x = tl.load(block)
        else:
            x = tl.load(block, boundary_check=(1,), padding_option="zero")
    return x


@triton.jit
def mma(a, b, acc, PRECISION: tl.constexpr):
    """acc + a @ b in float32. PRECISION "upcast": both operands go to float32 first, because Triton
    3.6's interpreter multiplies bfloat16 tiles as raw 16-bit integers; exact, as a bfloat16
    product fits float32. Only the interpreter uses it (see kernel_meta)."""
    if PRECISION == "upcast":
        out = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        out = tl.dot(a, b, acc, input_precision=PRECISION)
    return out


@triton.jit
def head_base(X, off_z, off_h, stride_z, stride_h):
    """Where (batch off_z, head off_h) of a (Z, H, N, d) tensor starts; int64 offsets: Z·H·N·d may pass 2³¹."""
    return X + off_z.to(tl.int64) * stride_z + off_h.to(tl.int64) * stride_h


@triton.jit
def rotate_back(x, cos_base, sin_base, stride_cn, offs, N, D, HEAD_DIM: tl.constexpr, EVEN_D: tl.constexpr):
    """x (rows, HEAD_DIM) float32, the gradient with respect to RoPE-rotated rows at positions offs: rotated back
    pair by pair, (x₂ₖ, x₂ₖ₊₁) → (x₂ₖ cos + x₂ₖ₊₁ sin, x₂ₖ₊₁ cos − x₂ₖ sin), the transpose of RoPE's rotation (A1
    §3.5.3), by the angles (N, d/2) at cos_base and sin_base. Padding columns (d < HEAD_DIM) come out 0."""
    pairs = tl.arange(0, HEAD_DIM // 2)
    angle = offs[:, None] * stride_cn + pairs[None, :]
    mask = offs[:, None] < N
    if not EVEN_D:  # only then: a mask at the runtime D // 2 splits the loads into scalar ones
        mask = mask & (pairs[None, :] < D // 2)
    cos = tl.load(cos_base + angle, mask=mask, other=0.0)
    sin = tl.load(sin_base + angle, mask=mask, other=0.0)
    even, odd = tl.split(tl.reshape(x, (x.shape[0], HEAD_DIM // 2, 2)))
    return tl.reshape(tl.join(even * cos + odd * sin, odd * cos - even * sin), (x.shape[0], HEAD_DIM))


@triton.jit
def query_tile_program(H, IS_CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr):
    """(start_m, off_z, off_h) of a program that owns one query tile of one (batch, head)."""
    pid_m = tl.program_id(0)
    if IS_CAUSAL:
        pid_m = tl.num_programs(0) - 1 - pid_m  # the longest rows first: fewer idle SMs at the end
    off_hz = tl.program_id(1)
    return pid_m * BLOCK_M, off_hz // H, off_hz % H


@triton.jit
def key_ranges(start_m, N_K, IS_CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """(full_hi, hi) for the query tile at start_m: key tiles [0, full_hi) are whole and (causal) before every
    query of the tile, so they need no mask; [full_hi, hi) are masked; causal tile skipping stops at the last query."""
    full_hi = (N_K // BLOCK_N) * BLOCK_N
    hi = N_K
    if IS_CAUSAL:
        full_hi = tl.minimum(full_hi, ((start_m + 1) // BLOCK_N) * BLOCK_N)
        hi = tl.minimum(N_K, start_m + BLOCK_M)
    return full_hi, hi


@triton.jit
def fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd, offs_m, lo, hi,
              N_K, D, qk_scale, IS_CAUSAL: tl.constexpr, MASKED: tl.constexpr, EVEN_D: tl.constexpr,
              HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    """Algorithm 1, lines 8–13, over key tiles [lo, hi); MASKED tiles compare indices, the others do not."""
    k_block = tl.make_block_ptr(k_base, shape=(N_K, D), strides=(stride_kn, stride_kd), offsets=(lo, 0),
                                block_shape=(BLOCK_N, HEAD_DIM), order=(1, 0))
    v_block = tl.make_block_ptr(v_base, shape=(N_K, D), strides=(stride_vn, stride_vd), offsets=(lo, 0),
                                block_shape=(BLOCK_N, HEAD_DIM), order=(1, 0))
    for start_n in range(lo, hi, BLOCK_N):
        k = load_tile(k_block, MASKED, EVEN_D)  # (BLOCK_N, HEAD_DIM)
        v = load_tile(v_block, MASKED, EVEN_D)
        qk = mma(q, tl.trans(k), None, PRECISION)  # (BLOCK_M, BLOCK_N), float32
        if MASKED:
            offs_n = start_n + tl.arange(0, BLOCK_N)
            keep = offs_n[None, :] < N_K
            if IS_CAUSAL:
                keep = keep & (offs_n[None, :] <= offs_m[:, None])  # key j ≤ query i
            # The max over kept keys, and P from the same single FMA as the unmasked tiles: a score first rounded
            # to float32 in log₂ units (|S| ≈ 500 → ulp 6e-5) would move P by ~2e-5 relative. Masked pairs get
            # P = 0 exactly, as the spec's −1e6 gives in float32. Every row keeps key 0 (in its first tile), so m
            # stays finite.
            m_new = tl.maximum(m_i, tl.max(tl.where(keep, qk, float("-inf")), 1) * qk_scale)
            p = tl.where(keep, tl.math.exp2(qk * qk_scale - m_new[:, None]), 0.0)
        else:
            m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
            p = tl.math.exp2(qk * qk_scale - m_new[:, None])  # one FMA per score
        alpha = tl.math.exp2(m_i - m_new)  # rescales what was summed under the old max
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = mma(p.to(v.dtype), v, acc * alpha[:, None], PRECISION)
        m_i = m_new
        k_block = tl.advance(k_block, (BLOCK_N, 0))
        v_block = tl.advance(v_block, (BLOCK_N, 0))
    return acc, l_i, m_i


@triton.jit
def flash_fwd_kernel(Q, K, V, O, L,
                     stride_qz, stride_qh, stride_qm, stride_qd,
                     stride_kz, stride_kh, stride_kn, stride_kd,
                     stride_vz, stride_vh, stride_vn, stride_vd,
                     stride_oz, stride_oh, stride_om, stride_od,
                     H, N_Q, N_K, D, qk_scale,
                     IS_CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr, EVEN_D: tl.constexpr,
                     PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """One program per (query tile, batch·head): O and L of BLOCK_M query rows."""
    start_m, off_z, off_h = query_tile_program(H, IS_CAUSAL, BLOCK_M)
    k_base = head_base(K, off_z, off_h, stride_kz, stride_kh)
    v_base = head_base(V, off_z, off_h, stride_vz, stride_vh)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    q_block = tl.make_block_ptr(head_base(Q, off_z, off_h, stride_qz, stride_qh), shape=(N_Q, D),
                                strides=(stride_qm, stride_qd), offsets=(start_m, 0), block_shape=(BLOCK_M, HEAD_DIM),
                                order=(1, 0))
    q = load_tile(q_block, True, EVEN_D)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    full_hi, hi = key_ranges(start_m, N_K, IS_CAUSAL, BLOCK_M, BLOCK_N)
    acc, l_i, m_i = fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd, offs_m,
                              0, full_hi, N_K, D, qk_scale, IS_CAUSAL, False, EVEN_D, HEAD_DIM, BLOCK_N, PRECISION)
    acc, l_i, m_i = fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd, offs_m,
                              full_hi, hi, N_K, D, qk_scale, IS_CAUSAL, True, EVEN_D, HEAD_DIM, BLOCK_N, PRECISION)
    o_block = tl.make_block_ptr(head_base(O, off_z, off_h, stride_oz, stride_oh), shape=(N_Q, D),
                                strides=(stride_om, stride_od), offsets=(start_m, 0), block_shape=(BLOCK_M, HEAD_DIM),
                                order=(1, 0))
    tl.store(o_block, (acc / l_i[:, None]).to(O.dtype.element_ty), boundary_check=(0, 1))
    lse = (m_i + tl.math.log2(l_i)) * 0.6931471805599453  # log₂ units -> natural log: L = m + log l
    tl.store(L + (off_z * H + off_h).to(tl.int64) * N_Q + offs_m, lse, mask=offs_m < N_Q)


@triton.jit
def flash_bwd_preprocess_kernel(O, DO, Delta,
                                stride_oz, stride_oh, stride_om, stride_od,
                                stride_dz, stride_dh, stride_dm, stride_dd,
                                H, N_Q, D, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    """D = rowsum(dO ∘ O) in float32, one value per query row (A2 §4.2.2, before eq. 13)."""
    pid_m, off_hz = tl.program_id(0), tl.program_id(1)
    off_z, off_h = off_hz // H, off_hz % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    mask = (offs_m[:, None] < N_Q) & (offs_d[None, :] < D)
    o = tl.load(head_base(O, off_z, off_h, stride_oz, stride_oh) + offs_m[:, None] * stride_om
                + offs_d[None, :] * stride_od, mask=mask, other=0.0)
    do = tl.load(head_base(DO, off_z, off_h, stride_dz, stride_dh) + offs_m[:, None] * stride_dm
                 + offs_d[None, :] * stride_dd, mask=mask, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(Delta + off_hz.to(tl.int64) * N_Q + offs_m, delta, mask=offs_m < N_Q)


@triton.jit
def dkdv_tiles(dk, dv, k, v, q_base, do_base, l_base, d_base, stride_qm, stride_qd, stride_dm, stride_dd,
               offs_n, lo, hi, N_Q, D, qk_scale, IS_CAUSAL: tl.constexpr, MASKED: tl.constexpr,
               EVEN_D: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, PRECISION: tl.constexpr):
    """dK and dV of one key tile, from the query tiles [lo, hi) (Algorithm 2's inner loop), transposed: Pᵀ, dSᵀ."""
    q_block = tl.make_block_ptr(q_base, shape=(N_Q, D), strides=(stride_qm, stride_qd), offsets=(lo, 0),
                                block_shape=(BLOCK_M, HEAD_DIM), order=(1, 0))
    do_block = tl.make_block_ptr(do_base, shape=(N_Q, D), strides=(stride_dm, stride_dd), offsets=(lo, 0),
                                 block_shape=(BLOCK_M, HEAD_DIM), order=(1, 0))
    for start_m in range(lo, hi, BLOCK_M):
        q = load_tile(q_block, MASKED, EVEN_D)  # (BLOCK_M, HEAD_DIM); rows past N_q read as 0
        do = load_tile(do_block, MASKED, EVEN_D)
        offs_m = start_m + tl.arange(0, BLOCK_M)
        if MASKED:
            # Rows past N_q: q = dO = 0, L = D = 0, so Pᵀ = 1 there but adds nothing to dV, and dSᵀ = 0.
            lse2 = tl.load(l_base + offs_m, mask=offs_m < N_Q, other=0.0) * 1.4426950408889634
            delta = tl.load(d_base + offs_m, mask=offs_m < N_Q, other=0.0)
        else:
            lse2 = tl.load(l_base + offs_m) * 1.4426950408889634
            delta = tl.load(d_base + offs_m)
        qk_t = mma(k, tl.trans(q), None, PRECISION)  # (BLOCK_N, BLOCK_M) = S_iᵀ · √d
        exponent = qk_t * qk_scale - lse2[None, :]
        if MASKED:
            if IS_CAUSAL:  # masked in the exponent: a future key's large score never overflows exp2
                exponent = tl.where(offs_m[None, :] >= offs_n[:, None], exponent, float("-inf"))
        p_t = tl.math.exp2(exponent)  # Pᵀ = exp(Sᵀ − L), eq. 14
        dv = mma(p_t.to(do.dtype), do, dv, PRECISION)  # eq. 15
        dp_t = mma(v, tl.trans(do), None, PRECISION)  # dPᵀ = V dOᵀ, eq. 16
        ds_t = p_t * (dp_t - delta[None, :])  # eq. 17
        dk = mma(ds_t.to(q.dtype), q, dk, PRECISION)  # eq. 19, without 1/√d yet
        q_block = tl.advance(q_block, (BLOCK_M, 0))
        do_block = tl.advance(do_block, (BLOCK_M, 0))
    return dk, dv


@triton.jit
def flash_bwd_dkdv_kernel(Q, K, V, DO, L, Delta, DK, DV, COS, SIN,
                          stride_qz, stride_qh, stride_qm, stride_qd,
                          stride_kz, stride_kh, stride_kn, stride_kd,
                          stride_vz, stride_vh, stride_vn, stride_vd,
                          stride_dz, stride_dh, stride_dm, stride_dd,
                          stride_gkz, stride_gkh, stride_gkn, stride_gkd,
                          stride_gvz, stride_gvh, stride_gvn, stride_gvd, stride_cz, stride_cn,
                          H, N_Q, N_K, D, qk_scale, sm_scale,
                          IS_CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr, EVEN_D: tl.constexpr,
                          ROTATE: tl.constexpr, PRECISION: tl.constexpr, BLOCK_M: tl.constexpr,
                          BLOCK_N: tl.constexpr):
    """One program per (key tile, batch·head): dK and dV of BLOCK_N keys, written once (no atomics); with ROTATE,
    dK rotated back by the angles COS, SIN of its keys' positions (rotate_back)."""
    pid_n, off_hz = tl.program_id(0), tl.program_id(1)
    off_z, off_h = off_hz // H, off_hz % H
    q_base = head_base(Q, off_z, off_h, stride_qz, stride_qh)
    k_base = head_base(K, off_z, off_h, stride_kz, stride_kh)
    v_base = head_base(V, off_z, off_h, stride_vz, stride_vh)
    do_base = head_base(DO, off_z, off_h, stride_dz, stride_dh)
    l_base = L + off_hz.to(tl.int64) * N_Q
    d_base = Delta + off_hz.to(tl.int64) * N_Q
    start_n = pid_n * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)
    k_block = tl.make_block_ptr(k_base, shape=(N_K, D), strides=(stride_kn, stride_kd), offsets=(start_n, 0),
                                block_shape=(BLOCK_N, HEAD_DIM), order=(1, 0))
    v_block = tl.make_block_ptr(v_base, shape=(N_K, D), strides=(stride_vn, stride_vd), offsets=(start_n, 0),
                                block_shape=(BLOCK_N, HEAD_DIM), order=(1, 0))
    k = load_tile(k_block, True, EVEN_D)
    v = load_tile(v_block, True, EVEN_D)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    q_ceil = ((N_Q + BLOCK_M - 1) // BLOCK_M) * BLOCK_M
    q_full = (N_Q // BLOCK_M) * BLOCK_M  # query tiles before this one are whole
    lo = 0
    mid = 0
    if IS_CAUSAL:
        lo = (start_n // BLOCK_M) * BLOCK_M  # earlier queries see none of these keys: skipped
        mid = ((start_n + BLOCK_N - 1 + BLOCK_M - 1) // BLOCK_M) * BLOCK_M  # from here every query sees every key
    # The diagonal tiles (masked), the whole tiles past it (no mask), then the last, partial query tile.
    dk, dv = dkdv_tiles(dk, dv, k, v, q_base, do_base, l_base, d_base, stride_qm, stride_qd, stride_dm, stride_dd,
                        offs_n, lo, tl.minimum(mid, q_ceil), N_Q, D, qk_scale, IS_CAUSAL, True, EVEN_D, HEAD_DIM,
                        BLOCK_M, PRECISION)
    dk, dv = dkdv_tiles(dk, dv, k, v, q_base, do_base, l_base, d_base, stride_qm, stride_qd, stride_dm, stride_dd,
                        offs_n, mid, q_full, N_Q, D, qk_scale, IS_CAUSAL, False, EVEN_D, HEAD_DIM, BLOCK_M,
                        PRECISION)
    dk, dv = dkdv_tiles(dk, dv, k, v, q_base, do_base, l_base, d_base, stride_qm, stride_qd, stride_dm, stride_dd,
                        offs_n, tl.maximum(mid, q_full), q_ceil, N_Q, D, qk_scale, IS_CAUSAL, True, EVEN_D,
                        HEAD_DIM, BLOCK_M, PRECISION)
    dk_block = tl.make_block_ptr(head_base(DK, off_z, off_h, stride_gkz, stride_gkh), shape=(N_K, D),
                                 strides=(stride_gkn, stride_gkd), offsets=(start_n, 0),
                                 block_shape=(BLOCK_N, HEAD_DIM), order=(1, 0))
    dv_block = tl.make_block_ptr(head_base(DV, off_z, off_h, stride_gvz, stride_gvh), shape=(N_K, D),
                                 strides=(stride_gvn, stride_gvd), offsets=(start_n, 0),
                                 block_shape=(BLOCK_N, HEAD_DIM), order=(1, 0))
    tl.store(dv_block, dv.to(DV.dtype.element_ty), boundary_check=(0, 1))  # first: its registers free for dK's turn
    dk = dk * sm_scale
    if ROTATE:
        angles = off_z.to(tl.int64) * stride_cz
        dk = rotate_back(dk, COS + angles, SIN + angles, stride_cn, offs_n, N_K, D, HEAD_DIM, EVEN_D)
    tl.store(dk_block, dk.to(DK.dtype.element_ty), boundary_check=(0, 1))


@triton.jit
def dq_tiles(dq, q, do, lse2, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd, offs_m, lo, hi,
             N_K, D, qk_scale, IS_CAUSAL: tl.constexpr, MASKED: tl.constexpr, EVEN_D: tl.constexpr,
             HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    """dQ of one query tile, accumulated over the key tiles [lo, hi)."""
    k_block = tl.make_block_ptr(k_base, shape=(N_K, D), strides=(stride_kn, stride_kd), offsets=(lo, 0),
                                block_shape=(BLOCK_N, HEAD_DIM), order=(1, 0))
    v_block = tl.make_block_ptr(v_base, shape=(N_K, D), strides=(stride_vn, stride_vd), offsets=(lo, 0),
                                block_shape=(BLOCK_N, HEAD_DIM), order=(1, 0))
    for start_n in range(lo, hi, BLOCK_N):
        k = load_tile(k_block, MASKED, EVEN_D)
        v = load_tile(v_block, MASKED, EVEN_D)
        qk = mma(q, tl.trans(k), None, PRECISION)
        exponent = qk * qk_scale - lse2[:, None]
        if MASKED:
            offs_n = start_n + tl.arange(0, BLOCK_N)
            keep = offs_n[None, :] < N_K
            if IS_CAUSAL:
                keep = keep & (offs_n[None, :] <= offs_m[:, None])
            exponent = tl.where(keep, exponent, float("-inf"))  # exp2 gives exactly 0, never inf
        p = tl.math.exp2(exponent)  # eq. 14
        dp = mma(do, tl.trans(v), None, PRECISION)  # eq. 16
        ds = p * (dp - delta[:, None])  # eq. 17
        dq = mma(ds.to(k.dtype), k, dq, PRECISION)  # eq. 18, without 1/√d yet
        k_block = tl.advance(k_block, (BLOCK_N, 0))
        v_block = tl.advance(v_block, (BLOCK_N, 0))
    return dq


@triton.jit
def flash_bwd_dq_kernel(Q, K, V, DO, L, Delta, DQ, COS, SIN,
                        stride_qz, stride_qh, stride_qm, stride_qd,
                        stride_kz, stride_kh, stride_kn, stride_kd,
                        stride_vz, stride_vh, stride_vn, stride_vd,
                        stride_dz, stride_dh, stride_dm, stride_dd,
                        stride_gqz, stride_gqh, stride_gqm, stride_gqd, stride_cz, stride_cn,
                        H, N_Q, N_K, D, qk_scale, sm_scale,
                        IS_CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr, EVEN_D: tl.constexpr,
                        ROTATE: tl.constexpr, PRECISION: tl.constexpr, BLOCK_M: tl.constexpr,
                        BLOCK_N: tl.constexpr):
    """One program per (query tile, batch·head): dQ of BLOCK_M queries, accumulated in float32, written once; with
    ROTATE, rotated back by the angles COS, SIN of its queries' positions (rotate_back)."""
    start_m, off_z, off_h = query_tile_program(H, IS_CAUSAL, BLOCK_M)
    k_base = head_base(K, off_z, off_h, stride_kz, stride_kh)
    v_base = head_base(V, off_z, off_h, stride_vz, stride_vh)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    q_block = tl.make_block_ptr(head_base(Q, off_z, off_h, stride_qz, stride_qh), shape=(N_Q, D),
                                strides=(stride_qm, stride_qd), offsets=(start_m, 0), block_shape=(BLOCK_M, HEAD_DIM),
                                order=(1, 0))
    do_block = tl.make_block_ptr(head_base(DO, off_z, off_h, stride_dz, stride_dh), shape=(N_Q, D),
                                 strides=(stride_dm, stride_dd), offsets=(start_m, 0), block_shape=(BLOCK_M, HEAD_DIM),
                                 order=(1, 0))
    q = load_tile(q_block, True, EVEN_D)
    do = load_tile(do_block, True, EVEN_D)
    rows = offs_m < N_Q
    row_base = (off_z * H + off_h).to(tl.int64) * N_Q
    lse2 = tl.load(L + row_base + offs_m, mask=rows, other=0.0) * 1.4426950408889634
    delta = tl.load(Delta + row_base + offs_m, mask=rows, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    full_hi, hi = key_ranges(start_m, N_K, IS_CAUSAL, BLOCK_M, BLOCK_N)
    dq = dq_tiles(dq, q, do, lse2, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd, offs_m, 0,
                  full_hi, N_K, D, qk_scale, IS_CAUSAL, False, EVEN_D, HEAD_DIM, BLOCK_N, PRECISION)
    dq = dq_tiles(dq, q, do, lse2, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd, offs_m,
                  full_hi, hi, N_K, D, qk_scale, IS_CAUSAL, True, EVEN_D, HEAD_DIM, BLOCK_N, PRECISION)
    dq_block = tl.make_block_ptr(head_base(DQ, off_z, off_h, stride_gqz, stride_gqh), shape=(N_Q, D),
                                 strides=(stride_gqm, stride_gqd), offsets=(start_m, 0),
                                 block_shape=(BLOCK_M, HEAD_DIM), order=(1, 0))
    dq = dq * sm_scale
    if ROTATE:
        angles = off_z.to(tl.int64) * stride_cz
        dq = rotate_back(dq, COS + angles, SIN + angles, stride_cn, offs_m, N_Q, D, HEAD_DIM, EVEN_D)
    tl.store(dq_block, dq.to(DQ.dtype.element_ty), boundary_check=(0, 1))


INTERPRETED = not isinstance(flash_fwd_kernel, triton.runtime.JITFunction)  # TRITON_INTERPRET=1 at import


def fix_interpreter_loop_bounds() -> None:
    """Let the interpreter run loops whose bounds are computed in the kernel (causal tile skipping).

    Triton 3.6's interpreter holds every scalar as a NumPy array of shape (1,) and turns it into
    a loop bound with ``int(array)``, which NumPy ≥ 2.3 refuses ("only 0-dimensional arrays can
    be converted"). This wraps the interpreter's patch of ``tl.tensor`` so that ``__index__``
    reads the one element instead. Only the interpreter is touched; compiled kernels never see it.
    """
    from triton.runtime import interpreter

    patch_tensor = interpreter._patch_lang_tensor
    if getattr(patch_tensor, "reads_one_element", False):
        return

    def patched(tensor, scope):
        patch_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    patched.reads_one_element = True
    interpreter._patch_lang_tensor = patched


if INTERPRETED:
    fix_interpreter_loop_bounds()


# ---------------------------------------------------------------------------------------------
# Launch configurations: autotuned on a GPU, fixed in the interpreter or with CS336_FLASH_AUTOTUNE=0

SMEM_BUDGET = 200 * 1024  # bytes; H100 has 228 KB per SM: leave room for the compiler's own buffers


def tile_grid(block_m: tuple[int, ...], block_n: tuple[int, ...]) -> list[triton.Config]:
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s)
            for m in block_m for n in block_n for w in (4, 8) for s in (2, 3, 4)]


# The forward's grid is the issue's; the backward's streamed tiles also try 32 rows (the Triton
# tutorial's best on Hopper: a 128-row resident tile with 32-row streamed ones keeps registers free).
CONFIGS = {
    "fwd": tile_grid((64, 128), (64, 128)),
    "dkdv": tile_grid((32, 64), (64, 128)),  # BLOCK_N keys resident, BLOCK_M queries streamed
    "dq": tile_grid((64, 128), (32, 64)),  # BLOCK_M queries resident, BLOCK_N keys streamed
}


def smem_bytes(kind: str, block_m: int, block_n: int, stages: int, head_dim: int, element_size: int) -> int:
    """Rough shared memory: the resident tile(s) plus ``stages`` copies of the streamed pair."""
    resident, streamed = {"fwd": (block_m, 2 * block_n), "dkdv": (2 * block_n, 2 * block_m),
                          "dq": (2 * block_m, 2 * block_n)}[kind]
    return (resident + stages * streamed) * head_dim * element_size


def registers_per_thread(kind: str, block_m: int, block_n: int, warps: int, head_dim: int, element_size: int) -> float:
    """Rough 32-bit registers per thread for what a program keeps live: float32 accumulators, the score tile(s),
    and resident input tiles (a 16-bit element is half a register)."""
    inputs = element_size / 4
    live = {"fwd": block_m * head_dim * (1 + inputs) + block_m * block_n,  # acc, q; S / P
            "dkdv": block_n * head_dim * 2 * (1 + inputs) + block_m * block_n,  # dk, dv, k, v; Sᵀ
            "dq": block_m * head_dim * (1 + 2 * inputs) + 2 * block_m * block_n}[kind]  # dq, q, dO; S, dP
    return live / (32 * warps)


def fits(kind: str):
    """Drop configurations that overflow shared memory or would spill registers (checked against sm_90 compiles with
    ptxas -v: every dropped 16-bit configuration at d = 64 spilled, every kept one did not): fewer compiles."""

    def prune(configs, named_args, **kwargs):
        element_size, head_dim = named_args["Q"].element_size(), kwargs["HEAD_DIM"]
        kept = [c for c in configs
                if smem_bytes(kind, c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_stages, head_dim, element_size)
                <= SMEM_BUDGET and registers_per_thread(kind, c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps,
                                                        head_dim, element_size) <= 192]
        return kept or configs[:1]

    return prune


# Without tuning: (BLOCK_M, BLOCK_N, num_warps, num_stages) per kernel, keyed by (element size, d > 64). Chosen from
# sm_90 compiles (ptxas -v): no register spills, within shared memory, for every d ≤ 128.
FIXED = {
    (2, False): {"fwd": (128, 64, 4, 3), "dkdv": (32, 128, 8, 3), "dq": (128, 32, 4, 3)},
    (2, True): {"fwd": (128, 64, 8, 3), "dkdv": (32, 128, 8, 3), "dq": (128, 32, 8, 3)},
    # float32: IEEE dots on the CUDA cores want small tiles
    (4, False): {"fwd": (64, 32, 8, 2), "dkdv": (16, 32, 8, 2), "dq": (32, 32, 8, 2)},
    (4, True): {"fwd": (32, 16, 4, 2), "dkdv": (16, 32, 8, 2), "dq": (32, 32, 8, 2)},
}


def fixed_config(kind: str, head_dim: int, element_size: int) -> dict:
    if INTERPRETED:  # small, unequal tiles: several tiles per row at test shapes, B_q ≠ B_k
        block_m, block_n = {"fwd": (32, 16), "dkdv": (16, 32), "dq": (32, 16)}[kind]
        return {"BLOCK_M": block_m, "BLOCK_N": block_n}
    block_m, block_n, warps, stages = FIXED[min(element_size, 4), head_dim > 64][kind]
    return {"BLOCK_M": block_m, "BLOCK_N": block_n, "num_warps": warps, "num_stages": stages}


def autotuned(kind: str, kernel):
    return triton.autotune(
        configs=CONFIGS[kind], key=["N_Q", "N_K", "D", "IS_CAUSAL", "ROTATE"],  # ROTATE: the backward's only
        prune_configs_by={"early_config_prune": fits(kind)},
        # A short benchmark per configuration: compiling them is what takes the time (about a minute per shape).
        do_bench=lambda fn, quantiles: triton.testing.do_bench(fn, warmup=5, rep=20, quantiles=quantiles),
        cache_results=True,
    )(kernel)


TUNED = {} if INTERPRETED else {"fwd": autotuned("fwd", flash_fwd_kernel),
                                "dkdv": autotuned("dkdv", flash_bwd_dkdv_kernel),
                                "dq": autotuned("dq", flash_bwd_dq_kernel)}
KERNELS = {"fwd": flash_fwd_kernel, "dkdv": flash_bwd_dkdv_kernel, "dq": flash_bwd_dq_kernel}


def launch(kind: str, tiles_of: str, n: int, zh: int, args: tuple, meta: dict, element_size: int) -> None:
    """Run kernel ``kind`` over cdiv(n, tile) x zh programs, ``tiles_of`` naming the tile along axis 0."""
    # float32 is the accuracy path (IEEE dots, no tensor cores): its fixed small tiles are not worth tuning.
    if not INTERPRETED and element_size != 4 and os.environ.get("CS336_FLASH_AUTOTUNE", "1") != "0":
        TUNED[kind][lambda config: (triton.cdiv(n, config[tiles_of]), zh)](*args, **meta)
        return
    config = fixed_config(kind, meta["HEAD_DIM"], element_size)
    KERNELS[kind][(triton.cdiv(n, config[tiles_of]), zh)](*args, **meta, **config)


# ---------------------------------------------------------------------------------------------
# The wrappers


def check_triton_inputs(Q: Tensor, K: Tensor, V: Tensor) -> None:
    check_inputs(Q, K, V, "FlashAttentionTriton")
    if Q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"FlashAttentionTriton takes float16, bfloat16 or float32 tensors, got {Q.dtype}")
    d = Q.shape[-1]
    if not MIN_HEAD_DIM <= d <= MAX_HEAD_DIM:
        raise ValueError(f"FlashAttentionTriton supports head dims {MIN_HEAD_DIM} ≤ d ≤ {MAX_HEAD_DIM}, got d={d} "
                         "(FlashAttentionPyTorch takes any d)")
    if Q.device.type != "cuda" and not INTERPRETED:
        raise ValueError(f"FlashAttentionTriton runs on CUDA tensors, got tensors on {Q.device}: use "
                         "FlashAttentionPyTorch (or flash_attention, which picks it off the GPU), or set "
                         "TRITON_INTERPRET=1 before importing the implementation to run the kernels in Triton's "
                         "(slow) interpreter")
    if Q.dim() >= 4 and Q.shape[-3] > MAX_GRID_Y:
        raise ValueError(f"FlashAttentionTriton supports at most {MAX_GRID_Y} heads, got {Q.shape[-3]}")


def as_4d(x: Tensor) -> Tensor:
    """(..., N, d) -> (Z, H, N, d): a view for 2-, 3- and 4-D tensors (strides kept), else a reshape."""
    if x.dim() == 2:
        return x[None, None]
    if x.dim() == 3:
        return x[:, None]  # (B, N, d) -> (B, 1, N, d)
    if x.dim() == 4:
        return x
    return x.reshape(-1, *x.shape[-3:])


def output_like(x: Tensor) -> Tensor:
    """Where a kernel writes the output or gradient of ``x``: in x's order of dims up to 4 dims, which as_4d keeps
    as views; contiguous above, which as_4d's reshape also keeps a view (of a copy it would write in vain)."""
    return empty_in_order_of(x) if x.dim() <= 4 else torch.empty(x.shape, dtype=x.dtype, device=x.device)


def z_chunks(tensors: list[Tensor], h: int) -> Iterator[tuple[int, list[Tensor]]]:
    """The (Z, H, ...) tensors' batch cut into ranges whose z · h programs fit the grid's second axis: (z · h, the
    tensors' rows of the range) per range; the tensors themselves where one range holds the whole batch, as it
    nearly always does (slicing them costs the CPU more than a short kernel's launch)."""
    z = tensors[0].shape[0]
    step = max(1, MAX_GRID_Y // h)
    if z <= step:
        yield z * h, tensors
        return
    for start in range(0, z, step):
        yield (min(z, start + step) - start) * h, [t[start:start + step] for t in tensors]


def kernel_meta(Q: Tensor, is_causal: bool) -> dict:
    d = Q.shape[-1]
    head_dim = max(16, triton.next_power_of_2(d))
    if Q.dtype == torch.float32:
        # IEEE float32 dots: plain TF32 (10-bit mantissas) misses PyTorch's float32 accuracy by about a thousand
        # times, and even 3xTF32 by about eight (enough to fail the float32 tolerance on large scores).
        precision = "ieee"
    elif INTERPRETED and Q.dtype == torch.bfloat16:
        precision = "upcast"  # see mma
    else:
        precision = "tf32"  # ignored for 16-bit operands
    return {"IS_CAUSAL": is_causal, "HEAD_DIM": head_dim, "EVEN_D": head_dim == d, "PRECISION": precision}


def flash_forward(Q: Tensor, K: Tensor, V: Tensor, is_causal: bool) -> tuple[Tensor, Tensor]:
    """O (Q's shape and dtype) and L (Q.shape[:-1], float32) from the forward kernel."""
    q4, k4, v4 = as_4d(Q), as_4d(K), as_4d(V)
    z, h, n_q, d = q4.shape
    n_k = k4.shape[2]
    O = output_like(Q)
    L = torch.empty(Q.shape[:-1], dtype=torch.float32, device=Q.device)
    o4, l3 = as_4d(O), L.view(z, h, n_q)
    sm_scale = 1 / math.sqrt(d)
    meta = kernel_meta(Q, is_causal)
    for zh, rows in z_chunks([q4, k4, v4, o4, l3], h):
        args = (*rows, *q4.stride(), *k4.stride(), *v4.stride(), *o4.stride(), h, n_q, n_k, d, sm_scale * LOG2E)
        launch("fwd", "BLOCK_M", n_q, zh, args, meta, Q.element_size())
    return O, L


def flash_backward(Q: Tensor, K: Tensor, V: Tensor, O: Tensor, L: Tensor, dO: Tensor, is_causal: bool,
                   out: tuple[Tensor, Tensor, Tensor] | None = None,
                   angles: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """dQ, dK, dV: the preprocess kernel (D), then the dK/dV kernel and the dQ kernel; written into ``out`` (tensors
    of Q's, K's and V's shapes, any strides) when given. With ``angles``, RoPE's cos and sin ((N, d/2) or (Z, N,
    d/2), float32) that rotated Q and K (causal self-attention, N_q = N_k): dQ and dK come out rotated back, the
    gradients with respect to Q and K before the rotation, as the kernels store them (no pass of their own)."""
    if any(stride == 0 and size > 1 for stride, size in zip(dO.stride(), dO.shape)):
        dO = dO.contiguous()  # autograd may hand an expanded (stride-0) gradient, e.g. from o.sum(); views are read
                              # through their strides
    q4, k4, v4, o4, do4 = as_4d(Q), as_4d(K), as_4d(V), as_4d(O), as_4d(dO)
    z, h, n_q, d = q4.shape
    n_k = k4.shape[2]
    dQ, dK, dV = out if out is not None else (output_like(Q), output_like(K), output_like(V))
    dq4, dk4, dv4 = as_4d(dQ), as_4d(dK), as_4d(dV)
    l3 = L.view(z, h, n_q)
    delta = torch.empty_like(l3)
    sm_scale = 1 / math.sqrt(d)
    meta = kernel_meta(Q, is_causal) | {"ROTATE": angles is not None}
    strides = (*q4.stride(), *k4.stride(), *v4.stride(), *do4.stride())
    # The angles as (Z, N, d/2), shared ones a stride-0 view; without them the kernels get L in their place, never
    # read (ROTATE is off).
    cos3, sin3 = (a.contiguous().expand(z, n_q, d // 2) for a in angles) if angles is not None else (l3, l3)
    angle_strides = (cos3.stride(0), cos3.stride(1))
    scalars = (h, n_q, n_k, d, sm_scale * LOG2E, sm_scale)
    block = 64 if INTERPRETED else 128
    for zh, (q, k, v, do, lse, dd, o, dk, dv, dq, cos, sin) in z_chunks(
            [q4, k4, v4, do4, l3, delta, o4, dk4, dv4, dq4, cos3, sin3], h):
        flash_bwd_preprocess_kernel[(triton.cdiv(n_q, block), zh)](
            o, do, dd, *o4.stride(), *do4.stride(), h, n_q, d, HEAD_DIM=meta["HEAD_DIM"], BLOCK_M=block)
        inputs = (q, k, v, do, lse, dd)  # dd: D = rowsum(dO ∘ O) of these rows
        launch("dkdv", "BLOCK_N", n_k, zh, (*inputs, dk, dv, cos, sin, *strides, *dk4.stride(), *dv4.stride(),
                                            *angle_strides, *scalars), meta, Q.element_size())
        launch("dq", "BLOCK_M", n_q, zh, (*inputs, dq, cos, sin, *strides, *dq4.stride(), *angle_strides, *scalars),
               meta, Q.element_size())
    return dQ, dK, dV


class FlashAttentionTriton(torch.autograd.Function):
    """FlashAttention-2 with Triton kernels: ``FlashAttentionTriton.apply(Q, K, V, is_causal=False)``."""

    @staticmethod
    def forward(ctx, Q: Tensor, K: Tensor, V: Tensor, is_causal: bool = False) -> Tensor:
        check_triton_inputs(Q, K, V)
        return run_forward(ctx, flash_forward, Q, K, V, is_causal)

    @staticmethod
    @once_differentiable
    def backward(ctx, dO: Tensor):
        return run_backward(ctx, flash_backward, dO)
