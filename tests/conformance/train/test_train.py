"""Training utilities against independent oracles (handout A1 §4–§5).

Oracles: torch.nn.functional.cross_entropy, torch.optim.AdamW, torch.nn.utils.clip_grad_norm_,
and slow code written literally from the handout (Algorithm 1, the cosine schedule formula).
Checkpoint tests use torch.optim.AdamW as the stateful optimizer, so that they check the
checkpoint functions alone.
"""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from spec import ComponentMissing
from spec.loading import needs
from tests.harness.compare import assert_close
from tests.harness.helpers import needs_keywords

# ---------------------------------------------------------------------------- helpers

FAST = settings(max_examples=25, deadline=None)


def tiny_model(seed: int, device) -> nn.Module:
    """A two-layer MLP with a seeded init: small, fast, with parameters of several shapes."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).to(device)


def regression_batch(step: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of training step ``step``: the same for every run, whatever was trained before."""
    generator = torch.Generator().manual_seed(1000 + step)
    x, y = torch.randn(16, 6, generator=generator), torch.randn(16, 3, generator=generator)
    return x.to(device), y.to(device)


def train(model: nn.Module, optimizer, steps: int, first_step: int = 0) -> None:
    for step in range(first_step, first_step + steps):
        optimizer.zero_grad()
        x, y = regression_batch(step, next(model.parameters()).device)
        ((model(x) - y) ** 2).mean().backward()
        optimizer.step()


def assert_identical(got: nn.Module, expected: nn.Module, what: str) -> None:
    """Bit-identical parameters (training is deterministic on one device)."""
    for (name, g), e in zip(got.named_parameters(), expected.parameters(), strict=True):
        assert torch.equal(g, e), f"{what}: parameter {name} differs, max |diff| {(g - e).abs().max().item():.3g}"


def assert_same_state(got, expected, what: str) -> None:
    """Recursively equal state (dicts, lists, tensors compared exactly)."""
    if isinstance(expected, torch.Tensor):
        same = isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.equal(got.cpu(), expected.cpu())
        assert same, f"{what}: tensor differs"
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), f"{what}: keys {sorted(got)} != {sorted(expected)}"
        for key in expected:
            assert_same_state(got[key], expected[key], f"{what}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), f"{what}: length {len(got)} != {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same_state(g, e, f"{what}[{i}]")
    else:
        assert got == expected, f"{what}: {got!r} != {expected!r}"


class Algorithm1:
    """AdamW written literally from the handout's Algorithm 1: slow, obvious, no torch.optim.

    Takes parameter groups like torch.optim (dicts with ``params`` and hyperparameters).
    """

    def __init__(self, groups: list[dict]):
        self.groups = groups
        self.m = {id(p): torch.zeros_like(p) for group in groups for p in group["params"]}
        self.v = {id(p): torch.zeros_like(p) for group in groups for p in group["params"]}
        self.t = 0

    def zero_grad(self) -> None:
        for group in self.groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1  # t starts at 1
        t = self.t
        for group in self.groups:
            alpha, (beta1, beta2), eps, lam = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for theta in group["params"]:
                g = theta.grad
                m = self.m[id(theta)] = beta1 * self.m[id(theta)] + (1 - beta1) * g
                v = self.v[id(theta)] = beta2 * self.v[id(theta)] + (1 - beta2) * g**2
                theta -= self.adam_update(m, v, t, alpha, beta1, beta2, eps)
                theta -= alpha * lam * theta

    def adam_update(self, m, v, t: int, alpha: float, beta1: float, beta2: float, eps: float) -> torch.Tensor:
        alpha_t = alpha * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        return alpha_t * m / (torch.sqrt(v) + eps)


class OptaxEpsRoot(Algorithm1):
    """Algorithm 1 in optax's bias-corrected form with its ``eps_root``: θ −= α·m̂ / (√(v̂ + eps_root) + ε̂), m̂ =
    m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ), where ε̂ = ε / √(1 − β₂ᵗ) is Algorithm 1's ε in this form; then θ −= αλθ."""

    def __init__(self, groups: list[dict], eps_root: float):
        super().__init__(groups)
        self.eps_root = eps_root

    def adam_update(self, m, v, t: int, alpha: float, beta1: float, beta2: float, eps: float) -> torch.Tensor:
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        return alpha * m_hat / (torch.sqrt(v_hat + self.eps_root) + eps / math.sqrt(1 - beta2**t))


def cosine_schedule_formula(t, alpha_max, alpha_min, t_w, t_c) -> float:
    """The handout's §4.4 schedule, case by case."""
    if t < t_w:
        return t / t_w * alpha_max
    if t <= t_c:
        return alpha_min + 0.5 * (1 + math.cos((t - t_w) / (t_c - t_w) * math.pi)) * (alpha_max - alpha_min)
    return alpha_min


def parameters_with_grads(shapes, scale: float, seed: int, device) -> list[nn.Parameter]:
    """Parameters with random gradients of about ``scale`` per element; the last one has no gradient."""
    generator = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        p = nn.Parameter(torch.randn(shape, generator=generator).to(device))
        p.grad = (scale * torch.randn(shape, generator=generator)).to(device)
        params.append(p)
    params.append(nn.Parameter(torch.randn(3, generator=generator).to(device)))  # grad stays None
    return params


def global_norm(params) -> float:
    return torch.linalg.vector_norm(torch.stack([p.grad.double().norm() for p in params if p.grad is not None])).item()


def clipped_by_torch(params, max_norm: float) -> list[torch.Tensor | None]:
    copies = [nn.Parameter(p.detach().clone()) for p in params]
    for c, p in zip(copies, params):
        c.grad = None if p.grad is None else p.grad.clone()
    torch.nn.utils.clip_grad_norm_(copies, max_norm)
    return [c.grad for c in copies]


def rng_for(impl, seed: int) -> dict:
    """``rng=`` for get_batch, unless the implementation declares it cannot take one (then fresh entropy)."""
    try:
        needs(impl.get_batch, "rng", "get_batch")
    except ComponentMissing:
        return {}
    return {"rng": np.random.default_rng(seed)}


def unique_tokens(n: int, seed: int = 0, dtype=np.int64) -> np.ndarray:
    """n distinct token ids in shuffled order, so that a window's first token gives its start."""
    return np.random.default_rng(seed).permutation(np.arange(40_000, 40_000 + n)).astype(dtype)


def window_starts(x: torch.Tensor, y: torch.Tensor, dataset: np.ndarray) -> list[int]:
    """Check every (x, y) row is a contiguous window and its shift by one; return the starts."""
    m, n = x.shape[1], len(dataset)
    position = {int(token): i for i, token in enumerate(dataset)}
    data = torch.from_numpy(np.asarray(dataset, dtype=np.int64))
    starts = []
    for row, (xs, ys) in enumerate(zip(x.cpu(), y.cpu())):
        start = position.get(int(xs[0]))
        assert start is not None, f"row {row}: first token {int(xs[0])} is not in the dataset"
        assert 0 <= start <= n - m - 1, f"row {row}: start {start} outside [0, n - m - 1] = [0, {n - m - 1}]"
        assert torch.equal(xs, data[start:start + m]), f"row {row}: x is not the contiguous window at {start}"
        assert torch.equal(ys, data[start + 1:start + m + 1]), f"row {row}: y is not x shifted by one"
        starts.append(start)
    return starts


def on_device(tensor: torch.Tensor, device: torch.device) -> bool:
    return tensor.device.type == device.type and (device.index is None or tensor.device.index == device.index)


def fresh_training(seed: int, device) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = tiny_model(seed, device)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)


# ---------------------------------------------------------------------------- cross_entropy

@pytest.mark.component("cross_entropy")
@FAST
@given(leading=st.lists(st.integers(1, 5), min_size=1, max_size=3), vocab=st.integers(2, 40),
       scale=st.sampled_from([0.1, 1.0, 10.0]), seed=st.integers(0, 2**16))
def test_cross_entropy_matches_torch(impl, device, leading, vocab, scale, seed):
    """Mean of −log softmax(logits)[target] over every leading dim, as F.cross_entropy (A1 §4.1, eq. 16–17)."""
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(*leading, vocab, generator=generator)
    targets = torch.randint(0, vocab, leading, generator=generator)
    got = impl.cross_entropy(logits.to(device), targets.to(device))
    assert_close(got, F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1)), what="cross_entropy")


@pytest.mark.component("cross_entropy")
@pytest.mark.parametrize("leading", [(12,), (3, 4), (2, 3, 2)], ids=["batch", "batch-seq", "three-dims"])
def test_cross_entropy_averages_over_all_leading_dims(impl, device, leading):
    """The loss averages (not sums) over every leading dim: any batch shape, same mean as flattened (A1 §4.1)."""
    generator = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(*leading, 7, generator=generator), torch.randint(0, 7, leading, generator=generator)
    per_position = -torch.log_softmax(logits.double(), -1).gather(-1, targets[..., None]).squeeze(-1)
    got = impl.cross_entropy(logits.to(device), targets.to(device))
    assert_close(got, per_position.mean().float(), what=f"cross_entropy over leading dims {leading}")


@pytest.mark.component("cross_entropy")
def test_cross_entropy_is_stable_for_huge_logits(impl, device):
    """Subtracting the max keeps the loss finite and exact for logits scaled by 1000 (A1 §4.1)."""
    generator = torch.Generator().manual_seed(1)
    logits = 1000 * torch.randn(4, 5, 11, generator=generator)
    targets = torch.randint(0, 11, (4, 5), generator=generator)
    got = impl.cross_entropy(logits.to(device), targets.to(device))
    assert torch.isfinite(got.cpu()).all(), f"cross_entropy overflowed on large logits: {got}"
    expected = F.cross_entropy(logits.double().reshape(-1, 11), targets.reshape(-1))
    assert_close(got, expected.float(), what="cross_entropy on logits × 1000")


@pytest.mark.component("cross_entropy")
def test_cross_entropy_gradient_matches_torch(impl, device):
    """The loss is differentiable: its gradient is (softmax − onehot) / count, as F.cross_entropy's (A1 §4.1)."""
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 4, 9, generator=generator)
    targets = torch.randint(0, 9, (3, 4), generator=generator)
    ours = logits.clone().to(device).requires_grad_()
    impl.cross_entropy(ours, targets.to(device)).backward()
    theirs = logits.clone().requires_grad_()
    F.cross_entropy(theirs.reshape(-1, 9), targets.reshape(-1)).backward()
    assert_close(ours.grad, theirs.grad, what="d cross_entropy / d logits")


@pytest.mark.strict
@pytest.mark.component("cross_entropy")
@pytest.mark.parametrize("targets_shape", [(4, 1), (1, 5), (4, 3), (4,), (4, 5, 1)])  # the first two broadcast silently
def test_cross_entropy_rejects_mismatched_targets(impl, device, targets_shape):
    """targets must have the shape of logits without the vocabulary dim; a mismatch raises (A1 §4.1)."""
    logits = torch.randn(4, 5, 6, device=device)
    targets = torch.zeros(targets_shape, dtype=torch.long, device=device)
    with pytest.raises((ValueError, RuntimeError, IndexError)):
        impl.cross_entropy(logits, targets)


# ---------------------------------------------------------------------------- AdamW

HYPERPARAMETERS = {
    "defaults": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
    # Large lr·λ: decay before the Adam step, or with α_t instead of α, shows here.
    "aggressive": dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.3),
    "no-decay": dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0),
}


def trained_with(optimizer_class, groups, seed: int, device, steps: int) -> nn.Module:
    """tiny_model(seed) after ``steps`` steps of ``optimizer_class(groups(model))``."""
    model = tiny_model(seed, device)
    train(model, optimizer_class(groups(model)), steps)
    return model


def assert_matches_one_of(model: nn.Module, references: dict[str, nn.Module], what: str) -> None:
    """Every parameter of ``model`` close to those of one of the references (the same one for all)."""
    mismatches = []
    for name, reference in references.items():
        try:
            for (param_name, got), expected in zip(model.named_parameters(), reference.parameters(), strict=True):
                assert_close(got, expected, what=f"{param_name} {what}, against {name}")
            return
        except AssertionError as mismatch:
            mismatches.append(str(mismatch))
    raise AssertionError("matches none of the accepted references:\n" + "\n".join(mismatches))


ADAMW_REFERENCES = {"Algorithm 1": Algorithm1, "torch.optim.AdamW": torch.optim.AdamW}
ADAMW_GROUPS = {  # (parameter groups of a tiny model, the defaults): hyperparameters per group, as in torch.optim
    **{name: (lambda m, hyper=hyper: [dict(params=list(m.parameters()), **hyper)]) for name, hyper in HYPERPARAMETERS.items()},
    "two-groups": lambda m: [dict(params=list(m[0].parameters()), lr=2e-2, weight_decay=0.2, betas=(0.9, 0.999), eps=1e-8),
                             dict(params=list(m[2].parameters()), lr=3e-3, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8)],
}


@pytest.mark.component("AdamW")
@pytest.mark.parametrize("name", ADAMW_GROUPS)
def test_adamw_matches_algorithm_1_or_torch(impl, device, name):
    """Bias-corrected Adam with decoupled weight decay, per parameter group: 8 steps end where Algorithm 1 or
    torch.optim.AdamW ends (A1 §4.3; the course's own test accepts either: they differ in where ε and the decay
    enter)."""
    model = trained_with(impl.AdamW, ADAMW_GROUPS[name], 0, device, steps=8)
    references = {label: trained_with(optimizer, ADAMW_GROUPS[name], 0, device, steps=8)
                  for label, optimizer in ADAMW_REFERENCES.items()}
    assert_matches_one_of(model, references, f"after 8 AdamW steps ({name})")


@pytest.mark.strict  # the course accepts torch.optim.AdamW's numbers too
@pytest.mark.component("AdamW")
@pytest.mark.parametrize("name", ADAMW_GROUPS)
def test_adamw_is_algorithm_1(impl, device, name):
    """Algorithm 1 exactly: the Adam step with ε outside the bias-corrected root, then θ −= αλθ with the base α,
    t from 1 (A1 Algorithm 1)."""
    model = trained_with(impl.AdamW, ADAMW_GROUPS[name], 0, device, steps=8)
    assert_matches_one_of(model, {"Algorithm 1": trained_with(Algorithm1, ADAMW_GROUPS[name], 0, device, steps=8)},
                          f"after 8 AdamW steps ({name})")


@pytest.mark.strict  # an extra: the course's AdamW has no eps_root
@pytest.mark.component("AdamW")
@pytest.mark.parametrize("name", ["defaults", "aggressive"])
def test_adamw_eps_root_is_optax_s(impl, device, name):
    """``eps_root`` (keyword, default 0) is optax's ε under the square root, √(v̂ + eps_root) in the bias-corrected
    form (the A3 training API's optimizer): 8 steps end where that form of Algorithm 1 ends. An eps_root near v̂
    (the gradients here are ~0.1, v̂ ~0.01) so that leaving it out, or adding it to v instead of v̂, shows."""
    needs_keywords(impl.AdamW, "AdamW", ["eps_root"], "optax's eps_root, the A3 training API's (an extra)")
    eps_root, groups = 1e-2, ADAMW_GROUPS[name]
    model = trained_with(lambda g: impl.AdamW(g, eps_root=eps_root), groups, 0, device, steps=8)
    expected = trained_with(lambda g: OptaxEpsRoot(g, eps_root), groups, 0, device, steps=8)
    assert_matches_one_of(model, {"Algorithm 1 with optax's eps_root": expected}, f"after 8 steps ({name})")
    without = trained_with(Algorithm1, groups, 0, device, steps=8)
    assert any((p - q).abs().max() > 1e-4 for p, q in zip(expected.parameters(), without.parameters())), \
        "the test's eps_root changes nothing: it cannot tell an implementation that ignores it"


@pytest.mark.component("AdamW")
def test_adamw_close_to_torch(impl, device):
    """Course-style check: a Linear fit with default hyperparameters tracks torch.optim.AdamW (A1 §4.3)."""

    def fit(optimizer_class) -> torch.Tensor:
        torch.manual_seed(42)
        model = nn.Linear(3, 2, bias=False).to(device)
        optimizer = optimizer_class(model.parameters(), lr=1e-3, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8)
        generator = torch.Generator().manual_seed(42)
        for _ in range(100):
            optimizer.zero_grad()
            x = torch.rand(3, generator=generator).to(device)
            target = torch.stack([x[0] + x[1], -x[2]])
            ((target - model(x)) ** 2).sum().backward()
            optimizer.step()
        return model.weight.detach()

    assert_close(fit(impl.AdamW), fit(torch.optim.AdamW), what="Linear weight after 100 steps vs torch.optim.AdamW")


@pytest.mark.component("AdamW")
def test_adamw_state_lives_in_optimizer_state(impl, device):
    """All state is in optimizer.state: a state_dict round trip mid-training continues identically (A1 §4.3)."""
    model = tiny_model(2, device)
    optimizer = impl.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    assert isinstance(optimizer, torch.optim.Optimizer), "AdamW must subclass torch.optim.Optimizer"
    train(model, optimizer, steps=3)
    assert all(optimizer.state[p] for p in model.parameters()), "optimizer.state[p] is empty after stepping"

    resumed_model = copy.deepcopy(model)
    resumed = impl.AdamW(resumed_model.parameters(), lr=1e-2, weight_decay=0.1)
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    train(model, optimizer, steps=3, first_step=3)
    train(resumed_model, resumed, steps=3, first_step=3)
    assert_identical(resumed_model, model, "training resumed from optimizer.state_dict()")


@pytest.mark.strict
@pytest.mark.component("AdamW")
def test_adamw_step_with_closure(impl, device):
    """``step(closure)`` calls the closure with gradients enabled (it may compute the loss and run backward, as
    torch.optim's closures do), steps with the gradients it made and returns its loss."""
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], device=device))
    optimizer = impl.AdamW([w], lr=0.1, weight_decay=0.0)

    def closure():
        optimizer.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    returned = None if loss is None else float(torch.as_tensor(loss).detach())
    assert returned == 5.0, f"step(closure) returned {loss!r}, expected the closure's loss 5.0"
    # At t = 1, m̂ / √v̂ = sign(g): each weight moves by lr against its gradient's sign.
    assert_close(w.detach(), torch.tensor([0.9, -1.9], device=device), what="weights after step(closure)")


@pytest.mark.strict
@pytest.mark.component("AdamW")
@pytest.mark.parametrize("bad", [dict(lr=-1e-3), dict(eps=-1e-8), dict(weight_decay=-0.1), dict(betas=(1.0, 0.999)),
                                 dict(betas=(0.9, 1.0)), dict(betas=(-0.1, 0.999))],
                         ids=["lr", "eps", "weight_decay", "beta1=1", "beta2=1", "beta1<0"])
def test_adamw_rejects_invalid_hyperparameters(impl, bad):
    """Negative lr, eps or weight_decay, or betas outside [0, 1), raise ValueError (A1 §4.3)."""
    with pytest.raises(ValueError):
        impl.AdamW([nn.Parameter(torch.zeros(2))], **bad)


# ---------------------------------------------------------------------------- lr_cosine_schedule

# The course's own test values: α_max 1, α_min 0.1, T_w 7, T_c 21, t = 0 … 24.
COURSE_SCHEDULE = [
    0, 0.14285714285714285, 0.2857142857142857, 0.42857142857142855, 0.5714285714285714, 0.7142857142857143,
    0.8571428571428571, 1.0, 0.9887175604818206, 0.9554359905560885, 0.9018241671106134, 0.8305704108364301,
    0.7452476826029011, 0.6501344202803414, 0.55, 0.44986557971965857, 0.3547523173970989, 0.26942958916356996,
    0.19817583288938662, 0.14456400944391146, 0.11128243951817937, 0.1, 0.1, 0.1, 0.1,
]


@pytest.mark.component("lr_cosine_schedule")
def test_schedule_course_values(impl):
    """Warm-up, cosine decay and the floor give the course's values for (1, 0.1, 7, 21), t = 0 … 24 (A1 §4.4)."""
    got = [impl.lr_cosine_schedule(t, 1.0, 0.1, 7, 21) for t in range(25)]
    assert_close(torch.tensor(got, dtype=torch.float64), torch.tensor(COURSE_SCHEDULE, dtype=torch.float64),
                 what="lr_cosine_schedule(t, 1, 0.1, 7, 21) for t = 0 … 24")


@pytest.mark.component("lr_cosine_schedule")
@FAST
@given(alpha_max=st.floats(1e-5, 1.0), min_fraction=st.floats(0.0, 1.0), warmup=st.integers(0, 50),
       cosine=st.integers(1, 200), t=st.integers(0, 300))
def test_schedule_matches_formula(impl, alpha_max, min_fraction, warmup, cosine, t):
    """α_max·t/T_w before T_w, half cosine from α_max to α_min on [T_w, T_c], α_min after (A1 §4.4)."""
    alpha_min, cycle = alpha_max * min_fraction, warmup + cosine
    got = impl.lr_cosine_schedule(t, alpha_max, alpha_min, warmup, cycle)
    expected = cosine_schedule_formula(t, alpha_max, alpha_min, warmup, cycle)
    assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-15), \
        f"lr_cosine_schedule({t}, {alpha_max}, {alpha_min}, {warmup}, {cycle}) = {got}, expected {expected}"


@pytest.mark.strict  # an extra: the course's warm-up starts at 0
@pytest.mark.component("lr_cosine_schedule")
@FAST
@given(alpha_max=st.floats(1e-5, 1.0), init_fraction=st.floats(0.0, 1.0), warmup=st.integers(1, 50),
       cosine=st.integers(1, 200), t=st.integers(0, 60))  # t < T_w in about 40% of the draws (0-300: 8%)
@example(alpha_max=1.0, init_fraction=0.5, warmup=10, cosine=10, t=5)  # inside the warm-up, whatever is drawn
def test_schedule_warmup_starts_at_the_initial_rate(impl, alpha_max, init_fraction, warmup, cosine, t):
    """``initial_learning_rate`` (keyword, default 0; optax's init_value, the A3 training API's): the warm-up rises
    linearly from it, α_0 + (α_max − α_0)·t/T_w; from T_w on the schedule is the handout's."""
    needs_keywords(impl.lr_cosine_schedule, "lr_cosine_schedule", ["initial_learning_rate"],
                   "optax's init_value, the A3 training API's (an extra)")
    alpha_0, alpha_min, cycle = alpha_max * init_fraction, alpha_max * 0.1, warmup + cosine
    got = impl.lr_cosine_schedule(t, alpha_max, alpha_min, warmup, cycle, initial_learning_rate=alpha_0)
    expected = (alpha_0 + (alpha_max - alpha_0) * t / warmup if t < warmup
                else cosine_schedule_formula(t, alpha_max, alpha_min, warmup, cycle))
    assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-15), \
        f"lr_cosine_schedule({t}, {alpha_max}, {alpha_min}, {warmup}, {cycle}, initial_learning_rate={alpha_0}) = " \
        f"{got}, expected {expected}"


@pytest.mark.strict
@pytest.mark.component("lr_cosine_schedule")
def test_schedule_rejects_negative_warmup(impl):
    """A negative warm-up raises ValueError (A1 §4.4)."""
    with pytest.raises(ValueError):
        impl.lr_cosine_schedule(3, 1.0, 0.1, -1, 10)


@pytest.mark.strict
@pytest.mark.component("lr_cosine_schedule")
def test_schedule_rejects_cycle_shorter_than_warmup(impl):
    """cosine_cycle_iters < warmup_iters raises ValueError (spec: the cosine phase would run backwards)."""
    with pytest.raises(ValueError):
        impl.lr_cosine_schedule(3, 1.0, 0.1, 10, 5)


# ---------------------------------------------------------------------------- clip_gradients

SHAPES = [(4, 5), (7,), (2, 3, 2)]


@pytest.mark.component("clip_gradients")
def test_clip_scales_by_global_norm(impl, device):
    """Above M, all grads scale by M/(‖g‖ + 1e-6), ‖g‖ one global norm: it ends just under M (A1 §4.5)."""
    params = parameters_with_grads(SHAPES, scale=0.3, seed=0, device=device)
    params[0].grad *= 3  # tensors of different norms (≈4, 0.8, 1): clipping each one alone would differ
    max_norm = 1.0
    expected = clipped_by_torch(params, max_norm)
    impl.clip_gradients(params, max_norm)
    for i, (p, e) in enumerate(zip(params, expected)):
        assert (p.grad is None) == (e is None), f"parameter {i}: a missing gradient must stay None"
        if e is not None:
            assert_close(p.grad, e, what=f"clipped gradient {i} vs clip_grad_norm_")
    norm = global_norm(params)
    assert max_norm - 1e-5 < norm < max_norm, f"global norm after clipping is {norm}, expected just under {max_norm}"


@pytest.mark.component("clip_gradients")
def test_clip_leaves_small_gradients_untouched(impl, device):
    """Below M the gradients are left exactly as they are (A1 §4.5)."""
    params = parameters_with_grads(SHAPES, scale=0.01, seed=1, device=device)
    before = [None if p.grad is None else p.grad.clone() for p in params]
    impl.clip_gradients(params, max_l2_norm=10.0)
    for i, (p, b) in enumerate(zip(params, before)):
        assert (p.grad is None and b is None) or torch.equal(p.grad, b), f"gradient {i} changed although under M"


@pytest.mark.component("clip_gradients")
@FAST
@given(scale=st.floats(1e-3, 1e3), max_norm=st.floats(1e-2, 1e2), seed=st.integers(0, 2**16))
def test_clip_matches_torch(impl, device, scale, max_norm, seed):
    """For any gradients and M the result equals torch's clip_grad_norm_ (global norm, eps 1e-6) (A1 §4.5)."""
    params = parameters_with_grads(SHAPES, scale=scale, seed=seed, device=device)
    expected = clipped_by_torch(params, max_norm)
    impl.clip_gradients(params, max_norm)
    for i, (p, e) in enumerate(zip(params, expected)):
        if e is not None:
            assert_close(p.grad, e, what=f"clipped gradient {i} (M={max_norm}, norm≈{scale})")


@pytest.mark.strict
@pytest.mark.component("clip_gradients")
def test_clip_accepts_any_iterable(impl, device):
    """``parameters`` may be any iterable, e.g. the generator model.parameters() (A1 §4.5)."""
    model = tiny_model(3, device)
    x, y = regression_batch(0, device)
    (1e3 * ((model(x) - y) ** 2).mean()).backward()
    expected = clipped_by_torch(list(model.parameters()), 0.5)
    impl.clip_gradients(model.parameters(), 0.5)
    for (name, p), e in zip(model.named_parameters(), expected):
        assert_close(p.grad, e, what=f"{name}.grad clipped through model.parameters()")


# The + 1e-6 changes the scale by ~1e-7 relative at ordinary norms (a few float32 ulps, so
# dropping it would pass by luck); at a global norm of 1e-5 it changes the scale by 10%.
@pytest.mark.component("clip_gradients")
@pytest.mark.parametrize("max_norm", [5e-6, 2e-6])
def test_clip_scale_includes_eps_for_tiny_gradients(impl, device, max_norm):
    """Gradients with global norm ≈ 1e-5 above M are scaled by M / (‖g‖ + 1e-6), eps included (A1 §4.5)."""
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in ((4, 5), (7,))]
    norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))
    grads = [(g * 1e-5 / norm).float() for g in grads]  # global norm 1e-5
    params = [nn.Parameter(torch.zeros_like(g, device=device)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone().to(device)  # clipped in place: keep g as it was
    impl.clip_gradients(params, max_norm)
    scale = max_norm / (1e-5 + 1e-6)  # without eps it would be max_norm / 1e-5, 10% more
    for i, (p, g) in enumerate(zip(params, grads)):
        # Divided by M, the gradients are O(1), so the float32 tolerance is a relative one.
        assert_close(p.grad / max_norm, g * scale / max_norm, what=f"clipped gradient {i} / M")


# ---------------------------------------------------------------------------- get_batch

@pytest.mark.component("get_batch")
def test_get_batch_windows(impl, device):
    """(B, m) int64 tensors on the device; each x is a contiguous window and y is x shifted by one (A1 §5.1)."""
    dataset = unique_tokens(100)
    x, y = impl.get_batch(dataset, 16, 10, str(device), **rng_for(impl, 0))
    for name, t in (("x", x), ("y", y)):
        assert t.shape == (16, 10), f"{name} has shape {tuple(t.shape)}, expected (batch_size, m) = (16, 10)"
        assert t.dtype == torch.int64, f"{name} has dtype {t.dtype}, expected torch.int64"
        assert on_device(t, device), f"{name} is on {t.device}, expected {device}"
    assert torch.equal(x[:, 1:], y[:, :-1]), "y is not x shifted by one"
    window_starts(x, y, dataset)


@pytest.mark.component("get_batch")
def test_get_batch_starts_cover_range_uniformly(impl, device):
    """Starts are uniform on [0, n − m − 1]: every start appears, the last included, none beyond (A1 §5.1)."""
    context_length = 8
    dataset = unique_tokens(context_length + 4)  # valid starts 0, 1, 2, 3
    kwargs = rng_for(impl, 1)
    starts = []
    for _ in range(20):
        x, y = impl.get_batch(dataset, 100, context_length, str(device), **kwargs)
        starts += window_starts(x, y, dataset)
    counts = np.bincount(starts, minlength=4)
    assert (counts > 0).all(), f"start counts {counts.tolist()} over 0 … 3: every valid start must be drawn"
    expected = len(starts) / 4
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    assert chi_square < 30, f"start counts {counts.tolist()} are far from uniform (chi² = {chi_square:.1f}, 3 dof)"


@pytest.mark.component("get_batch")
def test_get_batch_reads_memmap(impl, device, tmp_path):
    """Works on a memory-mapped uint16 token file (np.load mmap_mode='r') and returns int64 ids (A1 §5.1)."""
    path = tmp_path / "tokens.npy"
    np.save(path, unique_tokens(200, seed=3, dtype=np.uint16))  # ids above 32767: a cast to int16 would show
    dataset = np.load(path, mmap_mode="r")
    x, y = impl.get_batch(dataset, 8, 16, str(device), **rng_for(impl, 2))
    assert x.dtype == y.dtype == torch.int64, f"dtypes {x.dtype}, {y.dtype}, expected torch.int64"
    window_starts(x, y, np.asarray(dataset))


@pytest.mark.component("get_batch")
@pytest.mark.parametrize("bad_device", ["nonsense", "cuda:99"])
def test_get_batch_rejects_invalid_device(impl, bad_device):
    """An invalid or unavailable device raises RuntimeError, ValueError or AssertionError (A1 §5.1; the course's test
    accepts AssertionError: what ``.to("cuda:99")`` raises on a torch built without CUDA)."""
    if bad_device.startswith("cuda") and torch.cuda.device_count() > 99:
        pytest.skip("this machine has a cuda:99")
    with pytest.raises((RuntimeError, ValueError, AssertionError)):
        impl.get_batch(unique_tokens(50), 4, 8, bad_device)


@pytest.mark.component("get_batch")
def test_get_batch_reproducible_with_rng(impl, device):
    """The same ``rng`` seed gives the same batch; another seed another batch (A1 §5.1)."""
    needs(impl.get_batch, "rng", "get_batch")
    dataset = unique_tokens(1000)

    def draw(seed):
        return impl.get_batch(dataset, 8, 16, str(device), rng=np.random.default_rng(seed))

    (x1, y1), (x2, y2), (x3, _) = draw(7), draw(7), draw(8)
    assert torch.equal(x1, x2) and torch.equal(y1, y2), "same rng seed, different batches"
    assert not torch.equal(x1, x3), "different rng seeds gave the same batch"


# ---------------------------------------------------------------------------- checkpoints

@pytest.mark.component("load_checkpoint")
@pytest.mark.parametrize("kind", ["str", "Path", "BytesIO"])
def test_checkpoint_round_trip(impl, device, tmp_path, kind):
    """Model and optimizer state come back exactly, from a path or a file object; returns the iteration (A1 §5.2)."""
    model, optimizer = fresh_training(0, device)
    train(model, optimizer, steps=3)
    target = {"str": str(tmp_path / "ckpt.pt"), "Path": tmp_path / "ckpt.pt", "BytesIO": io.BytesIO()}[kind]
    impl.save_checkpoint(model, optimizer, 3, target)
    if kind == "BytesIO":
        target.seek(0)
    loaded_model, loaded_optimizer = fresh_training(1, device)
    iteration = impl.load_checkpoint(target, loaded_model, loaded_optimizer)
    assert iteration == 3, f"load_checkpoint returned {iteration!r}, expected the saved iteration 3"
    assert_same_state(loaded_model.state_dict(), model.state_dict(), "model state")
    assert_same_state(loaded_optimizer.state_dict(), optimizer.state_dict(), "optimizer state")


@pytest.mark.component("save_checkpoint")
@pytest.mark.parametrize("kind", ["path", "BytesIO"])
def test_checkpoint_resume_is_exact(impl, device, tmp_path, kind):
    """Save after N steps, load into a fresh model and optimizer, train M more: same as not stopping (A1 §5.2)."""
    model, optimizer = fresh_training(0, device)
    train(model, optimizer, steps=4)
    target = tmp_path / "ckpt.pt" if kind == "path" else io.BytesIO()
    impl.save_checkpoint(model, optimizer, 4, target)
    train(model, optimizer, steps=3, first_step=4)

    if kind == "BytesIO":
        target.seek(0)
    resumed_model, resumed_optimizer = fresh_training(1, device)
    iteration = impl.load_checkpoint(target, resumed_model, resumed_optimizer)
    train(resumed_model, resumed_optimizer, steps=3, first_step=iteration)
    assert_identical(resumed_model, model, "training resumed from the checkpoint")


@pytest.mark.strict
@pytest.mark.component("save_checkpoint")
def test_checkpoint_leaves_no_temp_files(impl, device, tmp_path):
    """Saving to a path (twice, overwriting) leaves exactly that file in the directory (A1 §5.2)."""
    model, optimizer = fresh_training(0, device)
    train(model, optimizer, steps=1)
    impl.save_checkpoint(model, optimizer, 1, tmp_path / "ckpt.pt")
    train(model, optimizer, steps=1, first_step=1)
    impl.save_checkpoint(model, optimizer, 2, tmp_path / "ckpt.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"], f"directory holds {sorted(tmp_path.iterdir())}"
    assert impl.load_checkpoint(tmp_path / "ckpt.pt", *fresh_training(1, device)) == 2, "the second save must win"
