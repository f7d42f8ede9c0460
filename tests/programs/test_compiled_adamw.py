"""impl.kernels.adamw.CompiledAdamW against impl.train.AdamW, the reference: the same parameters and moments after
several steps of a changing learning rate (with weight decay and eps_root), compiled once, and interchangeable state;
one-line changes of its source (its mutants) rejected by that comparison.
Speed is the benchmark's (bench/train/lm_throughput.py --kernels adamw), never asserted here."""

from __future__ import annotations

import pytest
import torch

import impl.kernels.adamw
from impl.kernels.adamw import CompiledAdamW
from impl.programs.config import ConfigError, TrainConfig, check_config, kernel_set
from impl.train import AdamW
from tests.harness.helpers import source_mutant

SHAPES = [(64, 32), (32,), (17, 5), (7,)]
SETTINGS = dict(betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


def train(optimizer_cls, steps: int = 6, eps_root: float = 1e-6, state: dict | None = None, **kwargs):
    """``steps`` steps on fixed random gradients, the learning rate changing every step (as a schedule does)."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape)) for shape in SHAPES]
    optimizer = optimizer_cls(params, lr=1e-2, eps_root=eps_root, **SETTINGS, **kwargs)
    if state is not None:
        optimizer.load_state_dict(state)
    generator = torch.Generator().manual_seed(1)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 1e-2 * (step + 1) / steps
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator)
        optimizer.step()
    return params, optimizer


def assert_same(params, expected) -> None:
    for got, want in zip(params, expected):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_update_gives_the_reference_parameters_and_moments(backend):
    expected, reference = train(AdamW)
    params, optimizer = train(CompiledAdamW, backend=backend)
    assert_same(params, expected)
    for p, q in zip(params, expected):
        for key in ("m", "v"):  # moments ~0.1-1: Inductor's fused multiply-adds round differently by an ulp or so
            torch.testing.assert_close(optimizer.state[p][key], reference.state[q][key], rtol=1e-6, atol=1e-7)
        assert optimizer.state[p]["t"] == reference.state[q]["t"] == 6


def test_a_changing_learning_rate_does_not_recompile():
    """The per-step numbers are a device tensor filled in place: one graph for every step."""
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        train(CompiledAdamW, steps=4, backend="aot_eager")


def assert_follows_reference(optimizer_cls=CompiledAdamW) -> None:
    """``optimizer_cls`` (compiled with aot_eager) ends with the reference's parameters, with its settings and with
    eps_root changed: the comparison would not see a dropped term if both paths dropped it, so each change is first
    checked to move the reference's own parameters."""
    expected, _ = train(AdamW)
    assert_same(train(optimizer_cls, backend="aot_eager")[0], expected)
    for change in (dict(eps_root=0.0), dict(eps_root=1e-2)):
        other, _ = train(AdamW, **change)
        assert max((a - b).abs().max().item() for a, b in zip(other, expected)) > 1e-5
        assert_same(train(optimizer_cls, backend="aot_eager", **change)[0], other)


def test_decay_and_the_root_epsilon_reach_the_parameters():
    assert_follows_reference()


# One change each to impl/kernels/adamw.py's source, (original, replacement): the check above must reject every one.
MUTANTS = {
    "β₁ for 1 − β₁ in m": ("add_(g, alpha=1 - beta1)", "add_(g, alpha=beta1)"),
    "v from g, not g²": ("addcmul_(g, g, value=1 - beta2)", "add_(g, alpha=1 - beta2)"),
    "ε inside the root": ("(v + eps_root).sqrt() + eps", "(v + eps_root + eps).sqrt()"),
    "eps_root dropped": ("(v + eps_root).sqrt()", "v.sqrt()"),
    "decay before the Adam step": (
        "        p.sub_(lr_t * (m / ((v + eps_root).sqrt() + eps)))  # θ ← θ − α_t m / (√v + ε)\n"
        "        p.mul_(decay_factor)",
        "        p.mul_(decay_factor)\n        p.sub_(lr_t * (m / ((v + eps_root).sqrt() + eps)))"),
    "the step's numbers (α_t changes every step) set at the first step only": (
        "torch.empty(3, dtype=torch.float32, device=device)\n        scalars = self.scalars[device]\n",
        "torch.tensor([step.lr_t, step.decay_factor, step.eps_root], device=device)\n"
        "        scalars = self.scalars[device]\n        return self.compiled_update(params, grads, m, v, scalars, "
        "step.beta1, step.beta2, step.eps)\n"),
}


@pytest.mark.parametrize("mutant", MUTANTS)
def test_the_check_rejects_the_kernels_mutant(mutant):
    broken = source_mutant(impl.kernels.adamw, *MUTANTS[mutant]).CompiledAdamW
    with pytest.raises(AssertionError):
        assert_follows_reference(broken)


def test_the_state_is_the_references_either_way():
    """A checkpoint of one continues in the other: the same keys and the same numbers after."""
    _, compiled = train(CompiledAdamW, steps=3, backend="aot_eager")
    expected, _ = train(AdamW, steps=3, state=train(AdamW, steps=3)[1].state_dict())
    params, _ = train(AdamW, steps=3, state=compiled.state_dict())
    assert_same(params, expected)


@pytest.mark.parametrize("setting, expected", [
    ("none", set()), ("all", {"attention", "rmsnorm", "adamw", "lm_head"}),  # cudagraphs only by name
    ("lm_head,cudagraphs", {"lm_head", "cudagraphs"}),
    ("attention,adamw", {"attention", "adamw"}), ("adamw", {"adamw"})])
def test_the_kernels_setting_names_any_subset(setting, expected):
    assert kernel_set(setting) == expected
    check_config(TrainConfig(kernels=setting))


def test_an_unknown_kernel_is_refused_naming_it():
    with pytest.raises(ConfigError, match="unknown 'fused_adam'.*attention, rmsnorm, adamw, lm_head, cudagraphs"):
        check_config(TrainConfig(kernels="attention,fused_adam"))
