"""Reference training utilities: loss, AdamW, schedule, clipping, batches, checkpoints (A1 §4–§5).

No torch.nn.functional and no torch.optim beyond the Optimizer base class, as the handout
demands. The normative text for every convention is in ``spec/train.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, BinaryIO

import numpy as np
import torch
from torch import Tensor, nn

# The components of spec/train.py, with the same names.
__all__ = [
    "cross_entropy", "AdamW", "lr_cosine_schedule", "clip_gradients", "get_batch", "save_checkpoint",
    "load_checkpoint",
]


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean of −log softmax(logits)[target] over every leading dim, via a max-shifted logsumexp (A1 §4.1)."""
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} disagree: "
                         "targets must have the shape of logits without its last (vocabulary) dim")
    logits = logits.float()  # under bf16 autocast the logits arrive in bf16; the loss wants fp32
    # Detached: the shift cancels in the gradient, so autograd need not route one through amax.
    shifted = logits - logits.amax(dim=-1, keepdim=True).detach()
    log_normalizer = torch.log(torch.exp(shifted).sum(dim=-1))  # (...,)
    target_logit = shifted.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (...,)
    return (log_normalizer - target_logit).mean()


class AdamW(torch.optim.Optimizer):
    """AdamW as in the handout's Algorithm 1: bias-corrected step, then decoupled decay with base α.

    ``eps_root`` (0: the handout's) is optax's epsilon under the square root, m̂ / (√(v̂ + eps_root) + ε) in the
    bias-corrected form (the A3 training API's optimizer), which in Algorithm 1's form is
    √(v + eps_root·(1 − β₂ᵗ)): v̂ = v / (1 − β₂ᵗ), and α_t carries the √(1 − β₂ᵗ)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, *, eps_root: float = 0.0):
        if lr < 0:
            raise ValueError(f"invalid learning rate {lr}: must be >= 0")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid betas {betas}: each must lie in [0, 1)")
        if eps < 0:
            raise ValueError(f"invalid eps {eps}: must be >= 0")
        if weight_decay < 0:
            raise ValueError(f"invalid weight_decay {weight_decay}: must be >= 0")
        if eps_root < 0:
            raise ValueError(f"invalid eps_root {eps_root}: must be >= 0")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, eps_root=eps_root))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():  # step runs under no_grad; the closure may compute a loss and run backward
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            # Parameters at the same step count t share α_t: one multi-tensor (_foreach) update per such
            # set, the same arithmetic as a loop over parameters in a few kernel launches instead of ~6 each.
            by_step: dict[int, list[nn.Parameter]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]  # everything lives here so that state_dict() checkpoints it
                if not state:
                    state["t"] = 0
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["t"] += 1
                by_step.setdefault(state["t"], []).append(p)
            eps_root = group.get("eps_root", 0.0)  # a state dict saved before eps_root existed has none
            for t, params in by_step.items():
                m, v = [self.state[p]["m"] for p in params], [self.state[p]["v"] for p in params]
                lr_t = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                self.update(params, [p.grad for p in params], m, v, AdamWStep(
                    lr_t, 1 - lr * decay, beta1, beta2, eps, eps_root * (1 - beta2**t)))
        return loss

    def update(self, params: list[Tensor], grads: list[Tensor], m: list[Tensor], v: list[Tensor],
               step: AdamWStep) -> None:
        """Parameters and moments in place, all at one step count: Algorithm 1's arithmetic in multi-tensor
        (_foreach) kernels, a few launches for all the tensors instead of ~6 per tensor."""
        torch._foreach_mul_(m, step.beta1)
        torch._foreach_add_(m, grads, alpha=1 - step.beta1)  # m ← β₁m + (1−β₁)g
        torch._foreach_mul_(v, step.beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - step.beta2)  # v ← β₂v + (1−β₂)g²
        denominator = torch._foreach_sqrt(torch._foreach_add(v, step.eps_root) if step.eps_root else v)
        torch._foreach_add_(denominator, step.eps)
        torch._foreach_addcdiv_(params, m, denominator, value=-step.lr_t)  # θ ← θ − α_t m / (√v + ε)
        torch._foreach_mul_(params, step.decay_factor)  # decoupled decay uses the base α, after the Adam step


@dataclass(frozen=True)
class AdamWStep:
    """The numbers of one AdamW update at step count t (Algorithm 1)."""
    lr_t: float  # α_t = α √(1 − β₂ᵗ) / (1 − β₁ᵗ)
    decay_factor: float  # 1 − αλ
    beta1: float
    beta2: float
    eps: float
    eps_root: float  # eps_root · (1 − β₂ᵗ): optax's epsilon under the root, in Algorithm 1's form


def lr_cosine_schedule(t: int, max_learning_rate: float, min_learning_rate: float, warmup_iters: int,
                       cosine_cycle_iters: int, *, initial_learning_rate: float = 0.0) -> float:
    """Linear warm-up to α_max, cosine decay to α_min at T_c, α_min after (A1 §4.4). The warm-up starts at
    ``initial_learning_rate`` (the handout's 0; optax's ``init_value``, which the A3 training API takes)."""
    if warmup_iters < 0:
        raise ValueError(f"warmup_iters must be >= 0, got {warmup_iters}")
    if cosine_cycle_iters < warmup_iters:
        raise ValueError(f"cosine_cycle_iters={cosine_cycle_iters} must be >= warmup_iters={warmup_iters}")
    if t < warmup_iters:
        return initial_learning_rate + t / warmup_iters * (max_learning_rate - initial_learning_rate)
    if t > cosine_cycle_iters:
        return min_learning_rate
    if cosine_cycle_iters == warmup_iters:  # an empty cosine phase: t == T_w is its only point
        return max_learning_rate
    progress = (t - warmup_iters) / (cosine_cycle_iters - warmup_iters)
    return min_learning_rate + 0.5 * (1 + math.cos(math.pi * progress)) * (max_learning_rate - min_learning_rate)


def clip_gradients(parameters: Iterable[nn.Parameter], max_l2_norm: float, eps: float = 1e-6) -> Tensor | None:
    """Scale all gradients by M / (‖g‖₂ + eps) when the global norm ‖g‖₂ exceeds M (A1 §4.5).

    Returns the norm before clipping (the training program logs it), None without gradients.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return None
    # Multi-tensor (_foreach) kernels: one launch for all gradients rather than one or two per tensor.
    total_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2, dtype=torch.float32)))
    # torch.where keeps the decision on the device: no host sync per step on a GPU.
    scale = torch.where(total_norm > max_l2_norm, max_l2_norm / (total_norm + eps), torch.ones_like(total_norm))
    torch._foreach_mul_(grads, scale)
    return total_norm


def get_batch(dataset: np.ndarray, batch_size: int, context_length: int, device: str | torch.device,
              rng: np.random.Generator | None = None) -> tuple[Tensor, Tensor]:
    """B windows with starts uniform on [0, n − m − 1]; targets are inputs shifted by one (A1 §5.1)."""
    device = torch.device(device)  # raises on an unparsable device string
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} was requested but CUDA is not available")
    if dataset.ndim != 1 or not np.issubdtype(dataset.dtype, np.integer):
        raise ValueError(f"dataset must be a 1-D integer array of token ids, got shape {dataset.shape} {dataset.dtype}")
    n_starts = len(dataset) - context_length  # starts 0 … n − m − 1 keep the shifted target inside
    if n_starts < 1:
        raise ValueError(f"dataset of {len(dataset)} tokens is too short for context_length={context_length}")
    rng = rng if rng is not None else np.random.default_rng()
    starts = rng.integers(0, n_starts, size=batch_size)
    windows = np.asarray(dataset[starts[:, None] + np.arange(context_length + 1)], dtype=np.int64)  # (B, m+1)
    windows = torch.from_numpy(windows)
    if device.type == "cuda":
        windows = windows.pin_memory().to(device, non_blocking=True)
    else:
        windows = windows.to(device)
    return windows[:, :-1], windows[:, 1:]


Destination = str | os.PathLike | BinaryIO | IO[bytes]


def save_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, iteration: int, out: Destination) -> None:
    """Model state, optimizer state and iteration to a path or a binary file object (A1 §5.2): ``torch.save``.

    The train program saves more (sampler state, config) in the same form, through a file object from
    impl/programs/files.py's ``atomic_write``, so that a crash never leaves half a checkpoint under its name.
    """
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iteration": iteration}, out)


def read_checkpoint(src: Destination) -> dict:
    """The dict ``save_checkpoint`` wrote (tensors on the CPU), checked for its three entries."""
    checkpoint = torch.load(src, map_location="cpu", weights_only=True)
    missing = {"model", "optimizer", "iteration"} - set(checkpoint)
    if missing:
        raise ValueError(f"not a checkpoint written by save_checkpoint: missing {sorted(missing)}")
    return checkpoint


def load_checkpoint(src: Destination, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore model and optimizer from ``save_checkpoint``'s output; return the iteration."""
    checkpoint = read_checkpoint(src)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint["iteration"]
