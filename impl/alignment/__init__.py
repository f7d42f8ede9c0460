"""Alignment (handout A5 and its supplement; spec/alignment.py): SFT and GRPO helpers, the r1_zero reward, the
MMLU / GSM8K parsers, packed SFT data, the per-instance DPO loss."""

from impl.alignment.dpo import compute_per_instance_dpo_loss
from impl.alignment.grpo import (compute_group_normalized_rewards, compute_grpo_clip_loss,
                                 compute_naive_policy_gradient_loss, compute_policy_gradient_loss,
                                 grpo_microbatch_train_step)
from impl.alignment.rewards import parse_gsm8k_response, parse_mmlu_response, r1_zero_reward_fn
from impl.alignment.sft import (compute_entropy, get_response_log_probs, masked_mean, masked_normalize,
                                sft_microbatch_train_step, tokenize_prompt_and_output)
from impl.alignment.sft_data import PackedSFTDataset, iterate_batches

__all__ = [
    "tokenize_prompt_and_output", "compute_entropy", "get_response_log_probs", "masked_mean", "masked_normalize",
    "sft_microbatch_train_step", "compute_group_normalized_rewards", "compute_naive_policy_gradient_loss",
    "compute_grpo_clip_loss", "compute_policy_gradient_loss", "grpo_microbatch_train_step", "r1_zero_reward_fn",
    "parse_gsm8k_response", "parse_mmlu_response", "PackedSFTDataset", "iterate_batches",
    "compute_per_instance_dpo_loss",
]
