"""Training utilities (handout A1 §4–§5). The docstrings are normative."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import IO, BinaryIO, Protocol

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

# This area's components, in the report's order (spec.COMPONENTS is built from them).
__all__ = [
    "cross_entropy", "AdamW", "lr_cosine_schedule", "clip_gradients", "get_batch", "save_checkpoint",
    "load_checkpoint",
]

Destination = str | os.PathLike | BinaryIO | IO[bytes]


def cross_entropy(logits: Float[Tensor, "... vocab"], targets: Int[Tensor, "..."]) -> Float[Tensor, ""]:
    """Mean over every leading dim of −log softmax(logits)[target] (A1 §4.1, eq. 16–17).

    - Subtract the max before exponentiating and cancel log/exp: finite and exact for
      logits scaled by 1000.
    - ``targets`` has the shape of ``logits`` without its last dim.
    - (strict) Any other shape of ``targets`` raises (ValueError, RuntimeError or IndexError), never broadcasts.
    """
    ...


class AdamW(Protocol):
    """AdamW, handout Algorithm 1 (Loshchilov & Hutter alg. 2); a torch.optim.Optimizer subclass.

    - ``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)``; parameter
      groups work as in torch.optim.
    - Per step, t from 1: m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
      α_t = α √(1−β₂ᵗ)/(1−β₁ᵗ); θ ← θ − α_t m/(√v + ε); then θ ← θ − αλθ with the base α
      (decoupled decay, after the Adam step). torch.optim.AdamW decays first and adds ε to the
      bias-corrected √v̂: its numbers differ (up to ~5e-3 after a few steps at lr·λ = 0.015), and the course's
      own test accepts them, so the course level does too.
    - (strict) Algorithm 1 exactly: torch.optim.AdamW's numbers are not accepted.
    - All state lives in ``self.state[p]`` so that ``state_dict()`` checkpoints it.
    - (strict) ``step(closure)`` calls ``closure()`` with gradients enabled (it may run backward, as torch.optim's
      closures do) before stepping, and returns its loss; ``step()`` returns None.
    - (strict) Negative lr, eps or weight_decay, or betas outside [0, 1), raise ValueError.
    - (strict) ``eps_root`` (keyword, default 0: the above): optax's ε under the square root, the A3 training API's.
      In the bias-corrected form the step is α m̂ / (√(v̂ + eps_root) + ε/√(1−β₂ᵗ)), m̂ = m/(1−β₁ᵗ),
      v̂ = v/(1−β₂ᵗ); in Algorithm 1's, θ ← θ − α_t m/(√(v + eps_root·(1−β₂ᵗ)) + ε). An implementation without
      the keyword is reported missing for that check.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, *, eps_root: float = 0.0): ...

    def step(self, closure=None): ...


def lr_cosine_schedule(t: int, max_learning_rate: float, min_learning_rate: float, warmup_iters: int,
                       cosine_cycle_iters: int, *, initial_learning_rate: float = 0.0) -> float:
    """Cosine schedule with linear warm-up (A1 §4.4).

    t < T_w: α_max · t / T_w.  T_w ≤ t ≤ T_c: α_min + ½(1 + cos(π (t − T_w)/(T_c − T_w)))(α_max − α_min).
    t > T_c: α_min.

    (strict) A negative warm-up, or T_c < T_w, raises ValueError.
    (strict) ``initial_learning_rate`` (keyword, default 0: the above), α_0, optax's ``init_value`` (the A3
    training API's): t < T_w gives α_0 + (α_max − α_0) · t / T_w. Without the keyword: reported missing.
    """
    ...


def clip_gradients(parameters: Iterable[torch.nn.Parameter], max_l2_norm: float) -> None:
    """Clip in place by the global L2 norm (A1 §4.5).

    - One norm over all non-None gradients together (not per tensor). If it exceeds M,
      every gradient is scaled by M / (norm + 1e-6); otherwise gradients are untouched.
    - Parameters without a gradient are skipped.
    - (strict) ``parameters`` may be any iterable, e.g. the generator ``model.parameters()``.
    """
    ...


def get_batch(dataset: Int[np.ndarray, " n"], batch_size: int, context_length: int, device: str | torch.device,
              rng: np.random.Generator | None = None) -> tuple[Int[Tensor, "B m"], Int[Tensor, "B m"]]:
    """Sample B windows of m tokens from a 1-D token array (A1 §5.1).

    - Starts uniform on [0, n − m − 1] (every valid start, including the last); targets are
      the inputs shifted by one. int64 tensors on ``device``; works on np.memmap arrays.
    - An invalid or unavailable device raises (RuntimeError or ValueError).
    - ``rng`` makes the draw reproducible; None uses fresh entropy.
    """
    ...


def save_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, iteration: int,
                    out: Destination) -> None:
    """Save model state, optimizer state and iteration to a path or binary file object (A1 §5.2).

    Loading the result into a fresh model and optimizer and training on must give exactly
    what training on without the round trip gives.

    (strict) Saving to a path, also over an existing checkpoint, leaves that one file in its directory
    and no temporary files.
    """
    ...


def load_checkpoint(src: Destination, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore what ``save_checkpoint`` wrote into ``model`` and ``optimizer``; return the iteration."""
    ...
