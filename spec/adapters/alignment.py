"""The alignment bridge (spec/alignment.py): each function calls its ``run_*`` adapter (assignment5-alignment's
``tests/adapters.py``) with the same arguments in the same order, except ``masked_normalize``, whose adapter orders
``dim`` before ``normalize_constant`` and is called with keywords; ``PackedSFTDataset`` is what
``get_packed_sft_dataset`` returns; the DPO loss is ``run_compute_per_instance_dpo_loss`` (the handout's older name,
``per_instance_dpo``, serves where the file has only that). ``r1_zero_reward_fn`` is the course's own starter code
(drgrpo_grader), not an adapter: through this bridge it is missing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import spec.alignment as alignment
from spec.adapters.common import Adapters, bridge_functions

# Spec function -> the adapter taking the same arguments in the same order.
FUNCTIONS: dict[str, tuple[Callable, str]] = {
    "tokenize_prompt_and_output": (alignment.tokenize_prompt_and_output, "run_tokenize_prompt_and_output"),
    "compute_entropy": (alignment.compute_entropy, "run_compute_entropy"),
    "get_response_log_probs": (alignment.get_response_log_probs, "run_get_response_log_probs"),
    "masked_mean": (alignment.masked_mean, "run_masked_mean"),
    "sft_microbatch_train_step": (alignment.sft_microbatch_train_step, "run_sft_microbatch_train_step"),
    "compute_group_normalized_rewards": (alignment.compute_group_normalized_rewards,
                                         "run_compute_group_normalized_rewards"),
    "compute_naive_policy_gradient_loss": (alignment.compute_naive_policy_gradient_loss,
                                           "run_compute_naive_policy_gradient_loss"),
    "compute_grpo_clip_loss": (alignment.compute_grpo_clip_loss, "run_compute_grpo_clip_loss"),
    "compute_policy_gradient_loss": (alignment.compute_policy_gradient_loss, "run_compute_policy_gradient_loss"),
    "grpo_microbatch_train_step": (alignment.grpo_microbatch_train_step, "run_grpo_microbatch_train_step"),
    "parse_gsm8k_response": (alignment.parse_gsm8k_response, "run_parse_gsm8k_response"),
    "parse_mmlu_response": (alignment.parse_mmlu_response, "run_parse_mmlu_response"),
    "iterate_batches": (alignment.iterate_batches, "run_iterate_batches"),
}
DPO_ADAPTERS = ("run_compute_per_instance_dpo_loss", "per_instance_dpo")
BRIDGED = (*FUNCTIONS, "masked_normalize", "PackedSFTDataset", "compute_per_instance_dpo_loss")


def members(adapters: Adapters) -> dict[str, Any]:
    """The alignment components that the adapters file provides, bridged."""
    found: dict[str, Any] = bridge_functions(adapters, FUNCTIONS)
    if adapters.has("run_masked_normalize"):
        found["masked_normalize"] = bridge_masked_normalize(adapters)
    if adapters.has("get_packed_sft_dataset"):
        found["PackedSFTDataset"] = bridge_packed_dataset(adapters)
    if any(adapters.has(name) for name in DPO_ADAPTERS):
        found["compute_per_instance_dpo_loss"] = bridge_dpo(adapters)
    return found


def bridge_masked_normalize(adapters: Adapters) -> Callable:
    def masked_normalize(tensor, mask, normalize_constant=1.0, dim=None):
        """``masked_normalize`` through adapters.run_masked_normalize, called with keywords."""
        return adapters.call("masked_normalize", "run_masked_normalize", tensor=tensor, mask=mask, dim=dim,
                             normalize_constant=normalize_constant)

    masked_normalize.__signature__ = inspect.signature(alignment.masked_normalize)
    return masked_normalize


def bridge_packed_dataset(adapters: Adapters) -> Callable:
    def PackedSFTDataset(tokenizer, dataset_path, seq_length, shuffle):  # noqa: N802 (the spec's class name)
        """The dataset adapters.get_packed_sft_dataset returns."""
        return adapters.call("PackedSFTDataset", "get_packed_sft_dataset", tokenizer, dataset_path, seq_length,
                             shuffle)

    return PackedSFTDataset


def bridge_dpo(adapters: Adapters) -> Callable:
    def compute_per_instance_dpo_loss(lm, lm_ref, tokenizer, beta, prompt, response_chosen, response_rejected):
        """``compute_per_instance_dpo_loss`` through the first of the DPO adapters the file implements."""
        return adapters.call_first("compute_per_instance_dpo_loss", DPO_ADAPTERS, lm, lm_ref, tokenizer, beta, prompt,
                                   response_chosen, response_rejected)[1]

    compute_per_instance_dpo_loss.__signature__ = inspect.signature(alignment.compute_per_instance_dpo_loss)
    return compute_per_instance_dpo_loss
