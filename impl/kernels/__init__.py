"""Triton kernels with their autograd (A2 §3.1.1, §4; spec/kernels.py): fused RMSNorm, FlashAttention-2."""

from impl.kernels.flash_pytorch import FlashAttentionPyTorch
from impl.kernels.flash_triton import FlashAttentionTriton
from impl.kernels.multihead import flash_attention
from impl.kernels.rmsnorm import RMSNormTriton

__all__ = ["RMSNormTriton", "FlashAttentionPyTorch", "FlashAttentionTriton", "flash_attention"]
