"""RMSNorm as one fused Triton kernel forward and one backward (A2 §3.1.1 operator fusion, §4 Triton).

The same function as impl.nn.RMSNorm (A1 §3.5.1): y = x / √(mean(x²) + eps) · g over the last
dim, computed in float32 and returned in x's dtype. Eager PyTorch runs that as a chain of kernels and
saves several activation-size tensors for backward (A2 §3.1.1's hooks show them); here the
forward reads x and g once, writes y and one float32 per row (rstd = 1/rms), and saves only x,
g and rstd. With x̂ = x · rstd and h = dy · g, the backward is

    dx = rstd · (h − x̂ · mean(h · x̂))          per row: one pass over x and dy
    dg = Σ_rows dy · x̂                          a reduction over every row

Each backward program sums dg over the consecutive row blocks it owns into its own row of a
(programs, d_model) float32 buffer, and torch sums that buffer: no atomics, so the gradients are
bit-identical from run to run.

CPU tensors run only through Triton's interpreter (TRITON_INTERPRET=1 when this module is
imported, as the CPU test suite does); otherwise they raise a ValueError naming the device
(spec/kernels.py: no silent fallback, so that nobody times the eager path by mistake).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from torch import Tensor

from impl.nn import RMSNorm

MAX_D_MODEL = 65_536  # one program holds whole rows in registers
SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@triton.jit
def rmsnorm_fwd_kernel(X, W, Y, RSTD, n_rows, n_cols, eps, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """One program per block of BLOCK_M rows; BLOCK_N ≥ n_cols covers a whole row."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    cols = tl.arange(0, BLOCK_N)  # (BLOCK_N,)
    row_ok, col_ok = rows < n_rows, cols < n_cols
    mask = row_ok[:, None] & col_ok[None, :]
    offsets = rows.to(tl.int64)[:, None] * n_cols + cols[None, :]  # (BLOCK_M, BLOCK_N); int64: M·N may pass 2³¹
    x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)  # fp16 x² overflows from |x| ≈ 256
    w = tl.load(W + cols, mask=col_ok, other=0.0).to(tl.float32)
    rstd = tl.rsqrt(tl.sum(x * x, axis=1) / n_cols + eps)  # (BLOCK_M,); padding columns add 0
    y = x * rstd[:, None] * w[None, :]
    tl.store(Y + offsets, y.to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + rows, rstd, mask=row_ok)


@triton.jit
def rmsnorm_bwd_kernel(X, W, DY, RSTD, DX, DW_PARTIAL, n_rows, n_cols, BLOCK_M: tl.constexpr,
                       BLOCK_N: tl.constexpr, BLOCKS_PER_PROGRAM: tl.constexpr):
    """Program p handles row blocks p·k … p·k + k − 1 (k = BLOCKS_PER_PROGRAM) and writes its share of dg to
    DW_PARTIAL[p]. k is a compile-time constant (a power of two, so few variants get compiled): Triton
    3.6's interpreter cannot loop to a runtime bound under numpy ≥ 2.4."""
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    col_ok = cols < n_cols
    w = tl.load(W + cols, mask=col_ok, other=0.0).to(tl.float32)
    dw = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for i in range(BLOCKS_PER_PROGRAM):
        rows = (pid * BLOCKS_PER_PROGRAM + i) * BLOCK_M + tl.arange(0, BLOCK_M)
        row_ok = rows < n_rows
        mask = row_ok[:, None] & col_ok[None, :]
        offsets = rows.to(tl.int64)[:, None] * n_cols + cols[None, :]
        x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + offsets, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + rows, mask=row_ok, other=0.0)
        x_hat = x * rstd[:, None]
        h = dy * w[None, :]
        mean_h_x_hat = tl.sum(h * x_hat, axis=1) / n_cols  # (BLOCK_M,)
        dx = rstd[:, None] * (h - x_hat * mean_h_x_hat[:, None])
        tl.store(DX + offsets, dx.to(DX.dtype.element_ty), mask=mask)
        dw += tl.sum(dy * x_hat, axis=0)  # masked rows and columns contribute 0
    tl.store(DW_PARTIAL + pid.to(tl.int64) * n_cols + cols, dw, mask=col_ok)


INTERPRETED = not isinstance(rmsnorm_fwd_kernel, triton.runtime.JITFunction)  # TRITON_INTERPRET=1 at import


def launch_config(n_cols: int) -> tuple[int, int, int]:
    """Forward (BLOCK_M, BLOCK_N, num_warps): whole rows, about 4K elements a program, a warp per 512 of them."""
    block_n = triton.next_power_of_2(n_cols)
    block_m = max(1, min(16, 4096 // block_n))  # narrow rows: several per program, so programs are not tiny
    num_warps = min(max(block_m * block_n // 512, 1), 16)
    return block_m, block_n, num_warps


def backward_config(n_cols: int, element_size: int) -> tuple[int, int, int]:
    """Backward (BLOCK_M, BLOCK_N, num_warps): 8K elements a block (16K from 4096 columns in 16-bit types), at most
    64 rows, a warp per 256 columns, 4 to 16. Chosen on an H100 from CUDA-graph timings of the backward over 27–144
    launch settings per shape (16384 rows, d_model 768 … 4096, bf16 and fp32): at the bf16 shapes within 4% of the
    best setting found, where the forward's rule took up to 1.9x as long. float32 keeps 8K: a 16K block needs more
    than the 128 registers a thread has at 16 warps, and ptxas spilled 184 bytes a thread to the stack
    (tests/programs/test_hopper_compile.py); the best settings an H200 sweep found at 2560 and 4096 float32 columns
    were blocks of 4K and 8K elements."""
    block_n = triton.next_power_of_2(n_cols)
    block_elements = 16_384 if block_n >= 4096 and element_size < 4 else 8192
    block_m = max(1, min(64, block_elements // block_n))
    return block_m, block_n, min(max(block_n // 256, 4), 16)


@functools.lru_cache(maxsize=None)
def backward_programs_per_device(device: torch.device) -> int:
    """Programs of the backward: two per SM (one or two measured best; more only multiply the dg partials)."""
    if device.type == "cuda":
        return 2 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter: still several programs, so the partial-sum reduction is exercised


class RMSNormFunction(torch.autograd.Function):
    """Fused RMSNorm on a contiguous x (..., d_model) and gain (d_model,); checks live in ``rmsnorm``."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        n_cols = x.shape[-1]
        x_2d = x.view(-1, n_cols)  # (..., d) -> (rows, d)
        n_rows = x_2d.shape[0]
        y = torch.empty_like(x_2d)
        rstd = torch.empty(n_rows, dtype=torch.float32, device=x.device)
        block_m, block_n, num_warps = launch_config(n_cols)
        if n_rows:
            rmsnorm_fwd_kernel[(triton.cdiv(n_rows, block_m),)](
                x_2d, weight, y, rstd, n_rows, n_cols, eps, BLOCK_M=block_m, BLOCK_N=block_n, num_warps=num_warps)
        ctx.save_for_backward(x_2d, weight, rstd)  # one activation-size residual, x itself
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy: Tensor):
        x_2d, weight, rstd = ctx.saved_tensors
        n_rows, n_cols = x_2d.shape
        dy_2d = dy.reshape(n_rows, n_cols).contiguous()  # autograd may hand an expanded (stride-0) tensor
        dx = torch.empty_like(x_2d)
        block_m, block_n, num_warps = backward_config(n_cols, x_2d.element_size())
        n_blocks = triton.cdiv(n_rows, block_m)
        per_program = triton.cdiv(n_blocks, backward_programs_per_device(x_2d.device))
        blocks_per_program = triton.next_power_of_2(max(1, per_program))
        programs = max(1, triton.cdiv(n_blocks, blocks_per_program))
        dw_partial = torch.zeros(programs, n_cols, dtype=torch.float32, device=x_2d.device)
        if n_rows:
            rmsnorm_bwd_kernel[(programs,)](
                x_2d, weight, dy_2d, rstd, dx, dw_partial, n_rows, n_cols, BLOCK_M=block_m, BLOCK_N=block_n,
                BLOCKS_PER_PROGRAM=blocks_per_program, num_warps=num_warps)
        dw = dw_partial.sum(dim=0).to(weight.dtype)  # (programs, d) -> (d,): a fixed order, no atomics
        return dx.view(dy.shape), dw, None


def checked_inputs(x: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Clear errors for what the kernel cannot take; non-contiguous inputs are copied to contiguous ones."""
    if x.dtype not in SUPPORTED_DTYPES or weight.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"RMSNormTriton takes float32, bfloat16 or float16 tensors, got x {x.dtype} and weight "
                        f"{weight.dtype}")
    if weight.dim() != 1 or x.dim() == 0 or x.shape[-1] != weight.shape[0]:
        raise ValueError(f"x's last dim must equal d_model: x has shape {tuple(x.shape)}, "
                         f"the gain {tuple(weight.shape)}")
    if x.shape[-1] > MAX_D_MODEL:
        raise ValueError(f"RMSNormTriton supports d_model up to {MAX_D_MODEL}, got {x.shape[-1]}")
    if x.device != weight.device:
        raise ValueError(f"x is on {x.device} but the gain is on {weight.device}: both must be on one device")
    if x.device.type != "cuda" and not INTERPRETED:
        raise ValueError(f"RMSNormTriton runs on CUDA tensors, got a tensor on {x.device}: move the module and its "
                         "input to a GPU, use impl.nn.RMSNorm, or set TRITON_INTERPRET=1 before importing impl to run "
                         "the kernel through Triton's (slow) interpreter")
    return x.contiguous(), weight.contiguous()


def rmsnorm(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tensor:
    """x / √(mean(x²) + eps) · weight over the last dim, fused; float32 math, x's dtype out."""
    x, weight = checked_inputs(x, weight)
    return RMSNormFunction.apply(x, weight, eps)


class RMSNormTriton(RMSNorm):
    """impl.nn.RMSNorm's module (constructor, ``weight``, state dict) with the fused kernels in forward."""

    def forward(self, x: Tensor) -> Tensor:
        return rmsnorm(x, self.weight, self.eps)
