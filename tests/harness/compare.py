"""Tolerances (one table, per dtype) and a comparison whose failure names the worst mismatch."""

from __future__ import annotations

import numpy as np
import torch

# (rtol, atol) per dtype: an element passes when |got − expected| ≤ atol + rtol·|expected|.
# float32 leaves room for a different but sound summation order (einsum vs matmul, fused
# QKV vs three matmuls) over a few Transformer layers; low precision follows torch.testing.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-4, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-2),
    torch.float16: (1e-3, 1e-3),
}


class Mismatch(AssertionError):
    """A comparison failure; the message says where, expected, got and the tolerance."""


def as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    return torch.as_tensor(np.asarray(x))


def assert_close(got, expected, *, what: str = "output", dtype: torch.dtype | None = None) -> None:
    """Compare with the tolerance of ``dtype`` (default: the expected tensor's dtype).

    Integer and boolean tensors must match exactly. Shapes must agree.
    """
    got, expected = as_tensor(got), as_tensor(expected)
    if got.shape != expected.shape:
        raise Mismatch(f"{what}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    dtype = dtype or expected.dtype
    if not dtype.is_floating_point:
        wrong = got != expected
        if wrong.any():
            where = tuple(int(i) for i in wrong.nonzero()[0])
            raise Mismatch(f"{what}: {int(wrong.sum())} of {wrong.numel()} elements differ; first at index {where}: "
                           f"expected {expected[where].item()}, got {got[where].item()} (exact match required)")
        return
    rtol, atol = TOLERANCES[dtype]
    g, e = got.double(), expected.double()
    allowed = atol + rtol * e.abs()
    excess = (g - e).abs() - allowed
    # NaN or inf where the expected value is finite is the worst possible mismatch.
    excess = torch.where(torch.isfinite(g) | ~torch.isfinite(e), excess, torch.full_like(excess, float("inf")))
    excess = torch.where(torch.isnan(e) & torch.isnan(g), torch.full_like(excess, -1.0), excess)
    bad = excess > 0
    if not bad.any():
        return
    flat = int(torch.nan_to_num(excess, nan=float("inf")).argmax())
    where = tuple(int(i) for i in np.unravel_index(flat, excess.shape)) if excess.dim() else ()
    raise Mismatch(
        f"{what}: {int(bad.sum())} of {bad.numel()} elements outside tolerance; worst at index {where}: "
        f"expected {e[where].item():.8g}, got {g[where].item():.8g}, |diff| {abs(g[where] - e[where]).item():.3g} > "
        f"{allowed[where].item():.3g} (atol {atol:g} + rtol {rtol:g}·|expected|, {str(dtype).removeprefix('torch.')})"
    )


def assert_within_rule(got, baseline, truth, factor: float, what: str) -> None:
    """The flash-attention rule for kernels: max |got − truth| ≤ factor · max |baseline − truth| (+ 1e-6).

    ``truth`` is a float64 reference, ``baseline`` PyTorch's own computation in the same dtype; the
    factor is 2 for outputs and 3 for gradients. It judges a kernel by the error PyTorch itself makes
    where a fixed tolerance cannot, e.g. a float32 sum over thousands of rows.
    """
    truth = truth.double().cpu()
    error = (got.double().cpu() - truth).abs().max().item()
    allowed = factor * (baseline.double().cpu() - truth).abs().max().item() + 1e-6
    if error > allowed:
        raise Mismatch(f"{what}: max |error| against the float64 reference is {error:.3g}, more than {factor:g}x "
                       f"that of PyTorch in the same dtype ({allowed:.3g} allowed)")
