"""AdamW with its update compiled: each tensor's whole step in one fused pass (issue 20's LM-step lever).

impl.train.AdamW updates all tensors of a step count with multi-tensor (_foreach) kernels, one pass over the state
per arithmetic operation: m and v are read and written twice each, the square root and the ε written out and read
again, the parameter twice. Profiled at GPT-2 small on an H200 that was 4.0 ms of an 80 ms step where the peer's
fused torch AdamW took 1.9 (bench/results/h200-lm-step-profile.md). ``CompiledAdamW`` keeps the class, its state
(``t``, ``m``, ``v``: checkpoints load either way) and Algorithm 1's arithmetic in the same order of operations, and
hands torch.compile the per-tensor update, which Inductor fuses into one kernel per tensor that reads θ, g, m, v once
and writes θ, m, v once.

The numbers that change every step (α_t, 1 − αλ, the root's ε term) are a device tensor filled in place, not
Python floats: the compiled code is built once per set of tensors, and the step copies nothing from the host.
"""

from __future__ import annotations

import torch
from torch import Tensor

from impl.train import AdamW, AdamWStep


def fused_update(params: list[Tensor], grads: list[Tensor], ms: list[Tensor], vs: list[Tensor], scalars: Tensor,
                 beta1: float, beta2: float, eps: float) -> None:
    """impl.train.AdamW.update's arithmetic, tensor by tensor: ``scalars`` = (α_t, 1 − αλ, eps_root·(1 − β₂ᵗ))."""
    lr_t, decay_factor, eps_root = scalars[0], scalars[1], scalars[2]
    for p, g, m, v in zip(params, grads, ms, vs):
        m.mul_(beta1).add_(g, alpha=1 - beta1)  # m ← β₁m + (1−β₁)g
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v ← β₂v + (1−β₂)g²
        p.sub_(lr_t * (m / ((v + eps_root).sqrt() + eps)))  # θ ← θ − α_t m / (√v + ε)
        p.mul_(decay_factor)  # decoupled decay with the base α, after the Adam step


class CompiledAdamW(AdamW):
    """impl.train.AdamW, its update compiled (``backend``: torch.compile's; "aot_eager" traces without generating
    code, for machines without a compiler)."""

    def __init__(self, params, *args, backend: str = "inductor", **kwargs):
        super().__init__(params, *args, **kwargs)
        self.compiled_update = torch.compile(fused_update, backend=backend, fullgraph=True, dynamic=False)
        self.scalars: dict[torch.device, Tensor] = {}  # per device: filled in place each step

    def update(self, params: list[Tensor], grads: list[Tensor], m: list[Tensor], v: list[Tensor],
               step: AdamWStep) -> None:
        device = params[0].device
        if device not in self.scalars:
            self.scalars[device] = torch.empty(3, dtype=torch.float32, device=device)
        scalars = self.scalars[device]
        # fill_ passes the number in the kernel's arguments: no host-to-device copy, no synchronisation.
        for index, value in enumerate((step.lr_t, step.decay_factor, step.eps_root)):
            scalars[index].fill_(value)
        self.compiled_update(params, grads, m, v, scalars, step.beta1, step.beta2, step.eps)
