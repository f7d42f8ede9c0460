"""GRPO (A5 §7): group-normalized rewards, the naive and GRPO-Clip per-token losses, their dispatcher and the
microbatch step."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from impl.alignment.sft import masked_mean

LOSS_TYPES = ("no_baseline", "reinforce_with_baseline", "grpo_clip")


def compute_group_normalized_rewards(reward_fn: Callable[[str, str], dict[str, float]], rollout_responses: list[str],
                                     repeated_ground_truths: list[str], group_size: int, advantage_eps: float,
                                     normalize_by_std: bool) -> tuple[Tensor, Tensor, dict[str, float]]:
    if len(rollout_responses) != len(repeated_ground_truths):
        raise ValueError(f"{len(rollout_responses)} rollout_responses but {len(repeated_ground_truths)} "
                         "repeated_ground_truths")
    if group_size < 1 or len(rollout_responses) % group_size:
        raise ValueError(f"group_size {group_size} does not divide the {len(rollout_responses)} rollout_responses")
    raw = torch.tensor([float(reward_fn(r, g)["reward"]) for r, g in zip(rollout_responses, repeated_ground_truths)])
    groups = raw.view(-1, group_size)  # (n_prompts, G): each prompt's responses are contiguous
    advantages = groups - groups.mean(dim=1, keepdim=True)
    if normalize_by_std:
        advantages = advantages / (groups.std(dim=1, keepdim=True) + advantage_eps)  # unbiased std (n − 1)
    metadata = {"reward_mean": raw.mean().item(), "reward_std": raw.std().item() if raw.numel() > 1 else 0.0,
                "reward_max": raw.max().item(), "reward_min": raw.min().item()}
    return advantages.reshape(-1), raw, metadata


def compute_naive_policy_gradient_loss(raw_rewards_or_advantages: Tensor, policy_log_probs: Tensor) -> Tensor:
    return -raw_rewards_or_advantages * policy_log_probs  # (B, 1) broadcast over (B, T)


def compute_grpo_clip_loss(advantages: Tensor, policy_log_probs: Tensor, old_log_probs: Tensor,
                           cliprange: float) -> tuple[Tensor, dict[str, Tensor]]:
    ratio = torch.exp(policy_log_probs - old_log_probs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - cliprange, 1 + cliprange) * advantages
    is_clipped = clipped < unclipped
    return -torch.minimum(unclipped, clipped), {"clipped": is_clipped, "clip_fraction": is_clipped.float().mean()}


def compute_policy_gradient_loss(policy_log_probs: Tensor, loss_type: str, raw_rewards: Tensor | None = None,
                                 advantages: Tensor | None = None, old_log_probs: Tensor | None = None,
                                 cliprange: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    def need(name: str, value):
        if value is None:
            raise ValueError(f"loss_type {loss_type!r} needs {name}")
        return value

    if loss_type == "no_baseline":
        return compute_naive_policy_gradient_loss(need("raw_rewards", raw_rewards), policy_log_probs), {}
    if loss_type == "reinforce_with_baseline":
        return compute_naive_policy_gradient_loss(need("advantages", advantages), policy_log_probs), {}
    if loss_type == "grpo_clip":
        return compute_grpo_clip_loss(need("advantages", advantages), policy_log_probs,
                                      need("old_log_probs", old_log_probs), need("cliprange", cliprange))
    raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}")


def grpo_microbatch_train_step(policy_log_probs: Tensor, response_mask: Tensor, gradient_accumulation_steps: int,
                               loss_type: str, raw_rewards: Tensor | None = None, advantages: Tensor | None = None,
                               old_log_probs: Tensor | None = None,
                               cliprange: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    per_token, metadata = compute_policy_gradient_loss(policy_log_probs, loss_type, raw_rewards, advantages,
                                                       old_log_probs, cliprange)
    loss = masked_mean(per_token, response_mask, dim=1).mean() / gradient_accumulation_steps  # (B,) -> scalar
    loss.backward()
    return loss, metadata
