"""What the GRPO tests share: rewards given as a table, and the advantages an implementation computes from them."""

from __future__ import annotations


def table_reward(rewards: dict[str, float]):
    """A reward_fn: the response is a key of ``rewards``; the ground truth must be "gt"."""
    def reward_fn(response: str, ground_truth: str) -> dict[str, float]:
        assert ground_truth == "gt"
        r = rewards[response]
        return {"reward": r, "format_reward": 1.0, "answer_reward": r}
    return reward_fn


def rewards_case(impl, rewards: list[float], group_size: int, eps: float, normalize_by_std: bool):
    """``impl.compute_group_normalized_rewards`` on one response per reward, in order, all with ground truth "gt"."""
    responses = [f"response {i}" for i in range(len(rewards))]
    return impl.compute_group_normalized_rewards(table_reward(dict(zip(responses, rewards))), responses,
                                                 ["gt"] * len(rewards), group_size, eps, normalize_by_std)
