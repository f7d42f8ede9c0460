"""The Transformer LM on the Triton kernels: FlashAttention-2 and the fused RMSNorm (A2 §3.1.1, §4).

``use_kernels(model, attention=True, rmsnorm=True)`` changes a built impl.nn.TransformerLM in
place and returns it. The function, the parameters and the state dict stay the same, so the
losses and gradients equal the reference path's within float tolerance (tests/programs/test_fast_lm.py),
checkpoints load either way, and an optimizer built before the swap still holds the model's
parameters:

- each impl.nn.RMSNorm becomes an RMSNormTriton holding the *same* ``weight`` Parameter;
- each MultiHeadSelfAttention gets ``fused_attention = rotary_flash_attention``, which its forward calls
  on the packed q|k|v projection (RoPE and causal FlashAttention-2 in custom operators) instead of rotating,
  building the mask and the (seq, seq) scores.

RMSNormTriton needs CUDA tensors (or TRITON_INTERPRET=1 before impl is imported, as the CPU tests
do); rotary_flash_attention runs the Triton kernels on CUDA and the PyTorch FlashAttention-2 elsewhere.
"""

from __future__ import annotations

from torch import nn

from impl.kernels.multihead import rotary_flash_attention
from impl.nn import MultiHeadSelfAttention, RMSNorm, TransformerLM
from impl.kernels.rmsnorm import INTERPRETED, RMSNormTriton


def use_kernels(model: TransformerLM, attention: bool = True, rmsnorm: bool = True) -> TransformerLM:
    """Swap in the fused kernels (see the module docstring); returns ``model``, changed in place."""
    device = next(model.parameters()).device
    if rmsnorm and device.type != "cuda" and not INTERPRETED:
        raise ValueError(f"RMSNormTriton runs on CUDA tensors, but the model is on {device}: move it to a GPU "
                         "first (or set TRITON_INTERPRET=1 before importing impl to run the kernel interpreted)")
    if rmsnorm:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is RMSNorm:
                    setattr(parent, name, fused_rmsnorm(child))
    if attention:
        for module in model.modules():
            if isinstance(module, MultiHeadSelfAttention):
                module.fused_attention = rotary_flash_attention
    return model


def fused_rmsnorm(norm: RMSNorm) -> RMSNormTriton:
    """An RMSNormTriton sharing ``norm``'s gain Parameter (and eps)."""
    fused = RMSNormTriton(norm.weight.shape[0], eps=norm.eps, device="meta")
    fused.weight = norm.weight  # the same Parameter: optimizer state and state-dict key carry over
    return fused


def uses_kernels(model: nn.Module) -> dict[str, int]:
    """How many modules of ``model`` run on each kernel: {"rmsnorm": n, "attention": m}."""
    return {"rmsnorm": sum(isinstance(m, RMSNormTriton) for m in model.modules()),
            "attention": sum(m.fused_attention is not None for m in model.modules()
                             if isinstance(m, MultiHeadSelfAttention))}
