"""A toy user package that provides only three components, written independently of impl/.

The compliance report must show these three as passing and every other component as
missing, without crashing (tests/kit/test_report.py).
"""

import torch

name = "toy partial package"
__version__ = "0.0.1"


def softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    e = (x - x.max(dim=dim, keepdim=True).values).exp()
    return e / e.sum(dim=dim, keepdim=True)


def silu(x: torch.Tensor) -> torch.Tensor:
    return x / (1 + torch.exp(-x))


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"targets {tuple(targets.shape)} do not match logits {tuple(logits.shape)}")
    logits = logits.reshape(-1, logits.shape[-1]).double()
    top = logits.max(dim=-1, keepdim=True).values
    log_probs = logits - top - (logits - top).exp().sum(dim=-1, keepdim=True).log()
    return -log_probs.gather(1, targets.reshape(-1, 1)).mean().float()
