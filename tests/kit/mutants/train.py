"""The training pieces' mutants (spec/train.py): loss, AdamW, schedule, clipping, batches, checkpoints.
"""

from __future__ import annotations

import math

import torch

import impl as reference
from tests.kit.mutants.common import Mutant


def _cross_entropy_summed(logits, targets):
    return reference.cross_entropy(logits, targets) * targets.numel()


def _cross_entropy_unshifted(logits, targets):
    logits = logits.float()
    log_normalizer = torch.log(torch.exp(logits).sum(dim=-1))
    return (log_normalizer - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)).mean()


class AdamWVariant(reference.AdamW):
    """The reference step with knobs; each mutant below turns exactly one."""

    l2 = False  # add λθ to the gradient (Adam + L2) instead of decoupled decay
    bias_correction = True
    decay_with_lr_t = False  # θ −= α_t λ θ instead of the base α
    decay_first = False  # PyTorch's order: decay, then the Adam step
    eps_inside_sqrt = False  # √(v + ε) instead of √v + ε
    state_outside = False  # m, v, t kept in self.hidden: state_dict() misses them

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hidden: dict = {}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.hidden.setdefault(p, {}) if self.state_outside else self.state[p]
                if not state:
                    state.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["t"] += 1
                t, m, v = state["t"], state["m"], state["v"]
                g = p.grad + decay * p if self.l2 else p.grad
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                lr_t = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t) if self.bias_correction else lr
                if self.decay_first:
                    p.mul_(1 - lr * decay)
                denominator = (v + eps).sqrt() if self.eps_inside_sqrt else v.sqrt() + eps
                p.addcdiv_(m, denominator, value=-lr_t)
                if not (self.l2 or self.decay_first):
                    p.mul_(1 - (lr_t if self.decay_with_lr_t else lr) * decay)
        return loss


class AdamWWithL2(AdamWVariant):
    l2 = True


class AdamWNoBiasCorrection(AdamWVariant):
    bias_correction = False


class AdamWDecayWithLrT(AdamWVariant):
    decay_with_lr_t = True


class AdamWDecayFirst(AdamWVariant):
    decay_first = True


class AdamWEpsInsideSqrt(AdamWVariant):
    eps_inside_sqrt = True


class AdamWStateOutside(AdamWVariant):
    state_outside = True


class AdamWEpsRootOnRawV(reference.AdamW):
    """√(v + eps_root): eps_root added to Algorithm 1's v, not to the bias-corrected v̂ (the reference's
    eps_root·(1 − β₂ᵗ) undone: each group's eps_root divided by (1 − β₂ᵗ) before step t)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps_taken, self.eps_roots = 0, [group["eps_root"] for group in self.param_groups]

    @torch.no_grad()
    def step(self, closure=None):
        self.steps_taken += 1
        for group, eps_root in zip(self.param_groups, self.eps_roots):
            group["eps_root"] = eps_root / (1 - group["betas"][1] ** self.steps_taken)
        return super().step(closure)


def _schedule_ignores_initial_rate(t, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters, *,
                                   initial_learning_rate=0.0):
    return reference.lr_cosine_schedule(t, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters)


def _schedule_no_floor(t, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters):
    if t <= cosine_cycle_iters or cosine_cycle_iters == warmup_iters:
        return reference.lr_cosine_schedule(t, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters)
    progress = (t - warmup_iters) / (cosine_cycle_iters - warmup_iters)  # > 1: the cosine climbs back up
    return min_learning_rate + 0.5 * (1 + math.cos(math.pi * progress)) * (max_learning_rate - min_learning_rate)


def _schedule_warmup_off_by_one(t, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters):
    if t < warmup_iters:
        return (t + 1) / warmup_iters * max_learning_rate  # reaches α_max one step early
    return reference.lr_cosine_schedule(t, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters)


def _grads(parameters):
    return [p.grad for p in parameters if p.grad is not None]


def _clip_without_eps(parameters, max_l2_norm):
    grads = _grads(parameters)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if norm > max_l2_norm:
        for g in grads:
            g.mul_(max_l2_norm / norm)  # M / norm, not M / (norm + 1e-6)


def _clip_per_tensor(parameters, max_l2_norm):
    for p in parameters:
        reference.clip_gradients([p], max_l2_norm)


def _clip_always(parameters, max_l2_norm):
    grads = _grads(parameters)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    for g in grads:
        g.mul_(max_l2_norm / (norm + 1e-6))  # rescales small gradients up as well


def _get_batch_no_last_start(dataset, batch_size, context_length, device, rng=None):
    return reference.get_batch(dataset[:-1], batch_size, context_length, device, rng)  # starts 0 … n − m − 2


def _get_batch_unshifted(dataset, batch_size, context_length, device, rng=None):
    x, _ = reference.get_batch(dataset, batch_size, context_length, device, rng)
    return x, x.clone()


def _get_batch_int32(dataset, batch_size, context_length, device, rng=None):
    x, y = reference.get_batch(dataset, batch_size, context_length, device, rng)
    return x.int(), y.int()


class _EmptyOptimizerState:
    def __init__(self, optimizer):
        self.param_groups = optimizer.state_dict()["param_groups"]

    def state_dict(self):
        return {"state": {}, "param_groups": self.param_groups}


def _save_checkpoint_without_optimizer_state(model, optimizer, iteration, out):
    reference.save_checkpoint(model, _EmptyOptimizerState(optimizer), iteration, out)  # hyperparameters only


def _load_checkpoint_iteration_zero(src, model, optimizer):
    reference.load_checkpoint(src, model, optimizer)
    return 0


def _load_checkpoint_model_only(src, model, optimizer):
    checkpoint = torch.load(src, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    return checkpoint["iteration"]


MUTANTS: list[Mutant] = [
    Mutant("cross_entropy_summed", "cross_entropy", "sums over positions instead of averaging",
           _cross_entropy_summed),
    Mutant("cross_entropy_unshifted", "cross_entropy", "log Σ exp(logits) without the max shift: inf on large logits",
           _cross_entropy_unshifted),
    Mutant("adamw_l2", "AdamW", "λθ added to the gradient (Adam + L2) instead of decoupled decay", AdamWWithL2),
    Mutant("adamw_no_bias_correction", "AdamW", "α_t = α: no bias correction", AdamWNoBiasCorrection),
    Mutant("adamw_decay_with_lr_t", "AdamW", "decay θ −= α_t λ θ with the bias-corrected rate", AdamWDecayWithLrT),
    Mutant("adamw_decay_first", "AdamW", "decay before the Adam step (PyTorch's order)", AdamWDecayFirst),
    Mutant("adamw_eps_inside_sqrt", "AdamW", "m / √(v + ε) instead of m / (√v + ε)", AdamWEpsInsideSqrt),
    Mutant("adamw_state_outside", "AdamW", "m, v, t kept outside optimizer.state: not checkpointed",
           AdamWStateOutside),
    Mutant("schedule_no_floor", "lr_cosine_schedule", "cosine continues past T_c instead of staying at α_min",
           _schedule_no_floor),
    Mutant("schedule_warmup_off_by_one", "lr_cosine_schedule", "warm-up α_max (t + 1)/T_w", _schedule_warmup_off_by_one),
    Mutant("adamw_eps_root_on_raw_v", "AdamW", "eps_root added to Algorithm 1's v, not to the bias-corrected v̂",
           AdamWEpsRootOnRawV, level="strict"),
    Mutant("schedule_ignores_initial_rate", "lr_cosine_schedule", "initial_learning_rate ignored: the warm-up starts "
           "at 0", _schedule_ignores_initial_rate, level="strict"),
    Mutant("clip_without_eps", "clip_gradients", "scale M / norm instead of M / (norm + 1e-6)", _clip_without_eps),
    Mutant("clip_per_tensor", "clip_gradients", "each tensor clipped by its own norm, not the global one",
           _clip_per_tensor),
    Mutant("clip_always", "clip_gradients", "rescales to norm M even when the norm is below M", _clip_always),
    Mutant("get_batch_no_last_start", "get_batch", "starts on [0, n − m − 2]: the last window never drawn",
           _get_batch_no_last_start),
    Mutant("get_batch_unshifted", "get_batch", "targets equal the inputs, not shifted by one", _get_batch_unshifted),
    Mutant("get_batch_int32", "get_batch", "int32 tensors instead of int64", _get_batch_int32),
    Mutant("save_checkpoint_no_optimizer_state", "save_checkpoint", "optimizer moments not saved (hyperparameters only)",
           _save_checkpoint_without_optimizer_state),
    Mutant("load_checkpoint_iteration_zero", "load_checkpoint", "returns 0 instead of the saved iteration",
           _load_checkpoint_iteration_zero),
    Mutant("load_checkpoint_model_only", "load_checkpoint", "restores the model but not the optimizer",
           _load_checkpoint_model_only),
]
