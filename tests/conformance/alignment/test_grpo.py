"""Conformance of the GRPO pieces (spec/alignment.py; handout A5 §7.2–§7.3): compute_group_normalized_rewards, the
naive and GRPO-Clip per-token losses, compute_policy_gradient_loss, grpo_microbatch_train_step.

Oracles: eq. 28 / 31 / 32 / 33 written out plainly in float64 here, group by group and token by token. Properties
(hypothesis): every group's advantages have zero mean; a ratio clipped outside [1 − ε, 1 + ε] on the side of its
advantage gets no gradient; masked positions never matter.
"""

from __future__ import annotations

import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conformance.alignment.rewards_table import rewards_case, table_reward
from tests.harness.helpers import randn

PROPERTY = settings(max_examples=40, deadline=None)


def advantages_oracle(rewards: list[float], group_size: int, eps: float, normalize_by_std: bool) -> list[float]:
    out = []
    for start in range(0, len(rewards), group_size):
        group = rewards[start:start + group_size]
        mean = sum(group) / len(group)
        scale = statistics.stdev(group) + eps if normalize_by_std else 1.0  # stdev: n − 1
        out += [(r - mean) / scale for r in group]
    return out


# Two groups of 4 whose interleaving (responses 0, 2, 4, 6 | 1, 3, 5, 7) would give other numbers.
REWARDS = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]


@pytest.mark.component("compute_group_normalized_rewards")
@pytest.mark.parametrize("normalize_by_std", [True, False])
def test_group_normalized_rewards(impl, normalize_by_std):
    """Contiguous groups, the group mean subtracted, divided by the unbiased std + eps when asked; the raw rewards
    are reward_fn's "reward"."""
    advantages, raw, metadata = rewards_case(impl, REWARDS, 4, 1e-6, normalize_by_std)
    assert isinstance(metadata, dict)
    torch.testing.assert_close(raw.double(), torch.tensor(REWARDS, dtype=torch.float64))
    expected = torch.tensor(advantages_oracle(REWARDS, 4, 1e-6, normalize_by_std), dtype=torch.float64)
    assert advantages.shape == (8,)
    torch.testing.assert_close(advantages.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.component("compute_group_normalized_rewards")
def test_group_normalized_rewards_unbiased_std(impl):
    """A group of two, rewards 0 and 1: std with n − 1 is 0.7071, so the advantages are ±0.5/0.7071 (±0.7071), not
    ±1 (the std with n)."""
    advantages, _, _ = rewards_case(impl, [0.0, 1.0], 2, 0.0, True)
    torch.testing.assert_close(advantages.double(), torch.tensor([-0.5, 0.5], dtype=torch.float64) / 0.5 ** 0.5)


@pytest.mark.component("compute_group_normalized_rewards")
def test_group_normalized_rewards_equal_rewards(impl):
    """A group whose rewards are all equal has advantages 0 (std 0: eps keeps it finite)."""
    advantages, _, _ = rewards_case(impl, [1.0, 1.0, 1.0, 0.0, 0.5, 1.0], 3, 1e-6, True)
    assert torch.isfinite(advantages).all()
    assert advantages[:3].abs().max().item() == 0.0


@PROPERTY
@given(n_groups=st.integers(1, 4), group_size=st.integers(2, 6), normalize_by_std=st.booleans(),
       data=st.data())
@pytest.mark.component("compute_group_normalized_rewards")
def test_group_advantages_have_zero_mean(impl, n_groups, group_size, normalize_by_std, data):
    """Every group's advantages have zero mean, and equal the oracle's, whatever the rewards."""
    rewards = data.draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=n_groups * group_size,
                                 max_size=n_groups * group_size))
    advantages, _, _ = rewards_case(impl, rewards, group_size, 1e-6, normalize_by_std)
    groups = advantages.double().view(n_groups, group_size)
    assert groups.mean(1).abs().max().item() < 1e-5, groups
    expected = torch.tensor(advantages_oracle(rewards, group_size, 1e-6, normalize_by_std), dtype=torch.float64)
    torch.testing.assert_close(advantages.double(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.strict
@pytest.mark.component("compute_group_normalized_rewards")
def test_group_normalized_rewards_metadata_and_errors(impl):
    """(strict) Metadata values are Python floats; a group size that does not divide the rollouts, or a ground-truth
    list of another length, raises ValueError."""
    _, _, metadata = rewards_case(impl, REWARDS, 4, 1e-6, True)
    assert metadata and all(type(v) is float for v in metadata.values()), metadata
    reward_fn = table_reward({f"r{i}": 1.0 for i in range(6)})
    with pytest.raises(ValueError):
        impl.compute_group_normalized_rewards(reward_fn, [f"r{i}" for i in range(6)], ["gt"] * 6, 4, 1e-6, True)
    with pytest.raises(ValueError):
        impl.compute_group_normalized_rewards(reward_fn, [f"r{i}" for i in range(6)], ["gt"] * 5, 3, 1e-6, True)


def per_token_inputs(device, seed=10):
    advantages = randn(4, 1, seed=seed, device=device)
    log_probs = -randn(4, 6, seed=seed + 1, device=device).abs()
    old = log_probs + 0.3 * randn(4, 6, seed=seed + 2, device=device)
    return advantages, log_probs, old


@pytest.mark.component("compute_naive_policy_gradient_loss")
def test_naive_policy_gradient_loss(impl, device):
    """−A · log p at every token, the (B, 1) advantage broadcast over the sequence."""
    advantages, log_probs, _ = per_token_inputs(device)
    got = impl.compute_naive_policy_gradient_loss(advantages, log_probs)
    assert got.shape == (4, 6)
    torch.testing.assert_close(got.double(), -advantages.double() * log_probs.double())


def grpo_clip_oracle(advantages, log_probs, old, eps):
    ratio = torch.exp(log_probs.double() - old.double())
    a = advantages.double()
    return -torch.minimum(ratio * a, torch.clamp(ratio, 1 - eps, 1 + eps) * a)


@pytest.mark.component("compute_grpo_clip_loss")
@pytest.mark.parametrize("cliprange", [0.1, 0.2, 0.5])
def test_grpo_clip_loss(impl, device, cliprange):
    """−min(ρA, clip(ρ, 1 − ε, 1 + ε)A), ρ = exp(log p − log p_old), token by token."""
    advantages, log_probs, old = per_token_inputs(device)
    loss, metadata = impl.compute_grpo_clip_loss(advantages, log_probs, old, cliprange)
    assert isinstance(metadata, dict) and loss.shape == (4, 6)
    torch.testing.assert_close(loss.double(), grpo_clip_oracle(advantages, log_probs, old, cliprange),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.component("compute_grpo_clip_loss")
def test_grpo_clip_loss_clips_the_right_side(impl):
    """A > 0: a ratio of 1.5 counts as 1.2, one of 0.5 counts as itself; A < 0: the other way round."""
    ratios = torch.tensor([[1.5, 0.5, 1.0], [1.5, 0.5, 1.0]])
    advantages = torch.tensor([[1.0], [-1.0]])
    loss, _ = impl.compute_grpo_clip_loss(advantages, ratios.log(), torch.zeros(2, 3), 0.2)
    torch.testing.assert_close(loss, torch.tensor([[-1.2, -0.5, -1.0], [1.5, 0.8, 1.0]]))


@PROPERTY
@given(ratio=st.floats(0.05, 3.0), advantage=st.sampled_from([-2.0, -0.5, 0.5, 2.0]),
       cliprange=st.sampled_from([0.1, 0.2, 0.3]))
@pytest.mark.component("compute_grpo_clip_loss")
def test_grpo_clip_gradient_vanishes_where_clipped(impl, ratio, advantage, cliprange):
    """Where the clipped term is the minimum (ρ > 1 + ε with A > 0, ρ < 1 − ε with A < 0) the token gets no
    gradient; elsewhere its gradient is −A·ρ."""
    log_prob = torch.tensor([[float(torch.tensor(ratio).log())]], dtype=torch.float64, requires_grad=True)
    loss, _ = impl.compute_grpo_clip_loss(torch.tensor([[advantage]], dtype=torch.float64), log_prob,
                                          torch.zeros(1, 1, dtype=torch.float64), cliprange)
    loss.sum().backward()
    clipped = ratio > 1 + cliprange + 1e-9 if advantage > 0 else ratio < 1 - cliprange - 1e-9
    inside = (ratio <= 1 + cliprange - 1e-9) if advantage > 0 else (ratio >= 1 - cliprange + 1e-9)
    if clipped:
        assert log_prob.grad.item() == 0.0, (ratio, advantage, log_prob.grad)
    elif inside:
        assert abs(log_prob.grad.item() + advantage * ratio) < 1e-6 * max(1, abs(advantage * ratio)), log_prob.grad


@pytest.mark.strict
@pytest.mark.component("compute_grpo_clip_loss")
def test_grpo_clip_loss_metadata(impl):
    """(strict) metadata["clipped"] marks the tokens where the clipped term is strictly smaller; "clip_fraction" is
    their share."""
    ratios = torch.tensor([[1.5, 0.5, 1.0], [1.5, 0.5, 1.0]])
    _, metadata = impl.compute_grpo_clip_loss(torch.tensor([[1.0], [-1.0]]), ratios.log(), torch.zeros(2, 3), 0.2)
    expected = torch.tensor([[True, False, False], [False, True, False]])
    assert torch.equal(metadata["clipped"].bool(), expected), metadata["clipped"]
    assert abs(float(metadata["clip_fraction"]) - 2 / 6) < 1e-6


LOSS_TYPES = ("no_baseline", "reinforce_with_baseline", "grpo_clip")


def policy_loss_oracle(loss_type, log_probs, raw_rewards, advantages, old, cliprange):
    if loss_type == "no_baseline":
        return -raw_rewards.double() * log_probs.double()
    if loss_type == "reinforce_with_baseline":
        return -advantages.double() * log_probs.double()
    return grpo_clip_oracle(advantages, log_probs, old, cliprange)


@pytest.mark.component("compute_policy_gradient_loss")
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_policy_gradient_loss_dispatch(impl, device, loss_type):
    """no_baseline uses the raw rewards, reinforce_with_baseline the advantages, grpo_clip the clipped ratio."""
    advantages, log_probs, old = per_token_inputs(device)
    raw_rewards = randn(4, 1, seed=20, device=device).abs()
    loss, metadata = impl.compute_policy_gradient_loss(log_probs, loss_type, raw_rewards, advantages, old, 0.2)
    assert isinstance(metadata, dict)
    torch.testing.assert_close(loss.double(), policy_loss_oracle(loss_type, log_probs, raw_rewards, advantages, old,
                                                                 0.2), rtol=1e-5, atol=1e-6)


@pytest.mark.strict
@pytest.mark.component("compute_policy_gradient_loss")
@pytest.mark.parametrize("loss_type, missing", [("no_baseline", "raw_rewards"),
                                                ("reinforce_with_baseline", "advantages"),
                                                ("grpo_clip", "old_log_probs"), ("grpo_clip", "cliprange"),
                                                ("reinforce", None)])
def test_policy_gradient_loss_argument_checks(impl, loss_type, missing):
    """(strict) A needed argument left None, or an unknown loss_type, raises ValueError."""
    advantages, log_probs, old = per_token_inputs("cpu")
    arguments = {"raw_rewards": advantages.abs(), "advantages": advantages, "old_log_probs": old, "cliprange": 0.2}
    if missing:
        arguments[missing] = None
    with pytest.raises(ValueError):
        impl.compute_policy_gradient_loss(log_probs, loss_type, **arguments)


MASK = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 0, 0, 0, 0]],
                    dtype=torch.bool)


def grpo_step_oracle(loss_type, log_probs, mask, steps, raw_rewards, advantages, old, cliprange):
    per_token = policy_loss_oracle(loss_type, log_probs, raw_rewards, advantages, old, cliprange)
    mask = mask.double()
    return ((per_token * mask).sum(1) / mask.sum(1)).mean() / steps  # per-sequence means, batch mean, scaled


@pytest.mark.component("grpo_microbatch_train_step")
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("steps", [1, 3])
def test_grpo_microbatch_train_step(impl, device, loss_type, steps):
    """The per-token loss, masked mean over each sequence's response, mean over the batch, divided by the
    accumulation steps; backward called: the gradient is that of the same formula."""
    advantages, log_probs, old = per_token_inputs(device)
    raw_rewards = randn(4, 1, seed=21, device=device).abs()
    mask = MASK.to(device)
    policy = log_probs.clone().requires_grad_()
    loss, metadata = impl.grpo_microbatch_train_step(policy, mask, steps, loss_type, raw_rewards, advantages, old,
                                                     0.2)
    assert isinstance(metadata, dict)
    reference = log_probs.double().requires_grad_()
    expected = grpo_step_oracle(loss_type, reference, mask, steps, raw_rewards, advantages, old, 0.2)
    expected.backward()
    torch.testing.assert_close(loss.detach().double().reshape(()), expected.detach(), rtol=1e-5, atol=1e-7)
    assert policy.grad is not None, "the step must call loss.backward()"
    torch.testing.assert_close(policy.grad.double(), reference.grad, rtol=1e-5, atol=1e-7)


@PROPERTY
@given(fill=st.sampled_from([0.0, -1e4, -50.0, 3.0]), loss_type=st.sampled_from(LOSS_TYPES),
       seed=st.integers(0, 1000))
@pytest.mark.component("grpo_microbatch_train_step")
def test_grpo_microbatch_train_step_ignores_masked_positions(impl, fill, loss_type, seed):
    """Prompt and padding positions, whatever log-probs they hold, change neither the loss nor get a gradient."""
    advantages, log_probs, old = per_token_inputs("cpu", seed=seed)
    filled = torch.where(MASK, log_probs, torch.full_like(log_probs, fill)).requires_grad_()
    loss, _ = impl.grpo_microbatch_train_step(filled, MASK, 2, loss_type, advantages.abs(), advantages, old, 0.2)
    expected = grpo_step_oracle(loss_type, log_probs, MASK, 2, advantages.abs(), advantages, old, 0.2)
    torch.testing.assert_close(loss.detach().double().reshape(()), expected, rtol=1e-5, atol=1e-7)
    assert (filled.grad[~MASK] == 0).all(), filled.grad
