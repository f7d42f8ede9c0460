"""Alignment's mutants (spec/alignment.py): SFT and GRPO helpers, the r1_zero reward, the parsers, packed SFT data,
DPO.

Each is a mistake a course participant could make: prompt and output tokenized as one string, an unstable entropy,
log-probs of the inputs instead of the labels, a mask ignored, a loss not divided by the accumulation steps, the
biased std, interleaved groups, a sign error, the clip on the wrong side, DPO with the reference terms swapped, ...
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from impl.alignment import dpo, grpo, rewards, sft, sft_data
from spec.alignment import ALPACA_TEMPLATE
from tests.kit.mutants.common import Mutant

# --------------------------------------------------------------------------------------------- SFT helpers


def _tokenize_variant(prompt_strs, output_strs, tokenizer, *, joint=False, unshifted_mask=False, pad_id=None):
    rows = []
    for p, o in zip(prompt_strs, output_strs):
        prompt = tokenizer(p, add_special_tokens=False)["input_ids"]
        if joint:  # one string: the seam's tokens differ; the prompt's share taken from its own length
            both = tokenizer(p + o, add_special_tokens=False)["input_ids"]
            rows.append((both, len(prompt)))
        else:
            rows.append((prompt + tokenizer(o, add_special_tokens=False)["input_ids"], len(prompt)))
    length = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id if pad_id is None else pad_id
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, (row, n_prompt) in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, n_prompt:len(row)] = True
    return {"input_ids": ids[:, :-1], "labels": ids[:, 1:],
            "response_mask": mask[:, :-1] if unshifted_mask else mask[:, 1:]}


def _entropy_unstable(logits):
    p = logits.exp() / logits.exp().sum(-1, keepdim=True)
    return -(p * p.log()).sum(-1)


def _entropy_sign(logits):
    return -sft.compute_entropy(logits)


def _log_probs_variant(model, input_ids, labels, return_token_entropy=False, *, of_inputs=False,
                       entropy_always=False):
    logits = model(input_ids).logits
    index = input_ids if of_inputs else labels
    out = {"log_probs": torch.log_softmax(logits, -1).gather(-1, index.unsqueeze(-1)).squeeze(-1)}
    if return_token_entropy or entropy_always:
        out["token_entropy"] = sft.compute_entropy(logits)
    return out


def _masked_mean_ignores_mask(tensor, mask, dim=None):
    return tensor.mean() if dim is None else tensor.mean(dim)


def _masked_mean_multiplied(tensor, mask, dim=None):
    mask = mask.to(tensor.dtype)
    return (tensor * mask).sum() / mask.sum() if dim is None else (tensor * mask).sum(dim) / mask.sum(dim)


def _masked_normalize_by_count(tensor, mask, normalize_constant=1.0, dim=None):
    return sft.masked_mean(tensor, mask, dim)


def _sft_variant(policy_log_probs, response_mask, gradient_accumulation_steps, normalize_constant=1.0, *,
                 accumulate=True, token_mean=False):
    if token_mean:
        loss = -sft.masked_mean(policy_log_probs, response_mask)
    else:
        loss = -sft.masked_normalize(policy_log_probs, response_mask, normalize_constant, dim=-1).mean()
    if accumulate:
        loss = loss / gradient_accumulation_steps
    loss.backward()
    return loss, {}


# --------------------------------------------------------------------------------------------- GRPO


def _group_variant(reward_fn, rollout_responses, repeated_ground_truths, group_size, advantage_eps, normalize_by_std,
                   *, unbiased=True, interleaved=False, always_std=False):
    raw = torch.tensor([float(reward_fn(r, g)["reward"]) for r, g in zip(rollout_responses, repeated_ground_truths)])
    # interleaved: responses i, i + n, i + 2n ... taken for one group
    groups = raw.view(group_size, -1).T if interleaved else raw.view(-1, group_size)
    advantages = groups - groups.mean(1, keepdim=True)
    if normalize_by_std or always_std:
        advantages = advantages / (groups.std(1, keepdim=True, unbiased=unbiased) + advantage_eps)
    advantages = advantages.T.reshape(-1) if interleaved else advantages.reshape(-1)
    return advantages, raw, {"reward_mean": raw.mean().item()}


def _naive_sign(raw_rewards_or_advantages, policy_log_probs):
    return raw_rewards_or_advantages * policy_log_probs


def _grpo_clip_variant(advantages, policy_log_probs, old_log_probs, cliprange, *, wrong_side=False,
                       inverted_ratio=False):
    ratio = torch.exp(old_log_probs - policy_log_probs if inverted_ratio else policy_log_probs - old_log_probs)
    unclipped, clipped = ratio * advantages, torch.clamp(ratio, 1 - cliprange, 1 + cliprange) * advantages
    pick = torch.maximum if wrong_side else torch.minimum
    return -pick(unclipped, clipped), {"clipped": clipped < unclipped,
                                       "clip_fraction": (clipped < unclipped).float().mean()}


def _dispatch_variant(policy_log_probs, loss_type, raw_rewards=None, advantages=None, old_log_probs=None,
                      cliprange=None, *, baseline_uses_raw=False, asserts=False):
    if asserts:  # the handout's "assertion pattern": AssertionError, not ValueError
        assert loss_type in grpo.LOSS_TYPES
        assert loss_type != "no_baseline" or raw_rewards is not None
        assert loss_type == "no_baseline" or advantages is not None
        assert loss_type != "grpo_clip" or (old_log_probs is not None and cliprange is not None)
    if loss_type == "reinforce_with_baseline" and baseline_uses_raw:
        return grpo.compute_naive_policy_gradient_loss(raw_rewards, policy_log_probs), {}
    return grpo.compute_policy_gradient_loss(policy_log_probs, loss_type, raw_rewards, advantages, old_log_probs,
                                             cliprange)


def _grpo_step_variant(policy_log_probs, response_mask, gradient_accumulation_steps, loss_type, raw_rewards=None,
                       advantages=None, old_log_probs=None, cliprange=None, *, token_mean=False, accumulate=True):
    per_token, metadata = grpo.compute_policy_gradient_loss(policy_log_probs, loss_type, raw_rewards, advantages,
                                                            old_log_probs, cliprange)
    loss = sft.masked_mean(per_token, response_mask) if token_mean else sft.masked_mean(per_token, response_mask,
                                                                                         dim=1).mean()
    if accumulate:
        loss = loss / gradient_accumulation_steps
    loss.backward()
    return loss, metadata


# --------------------------------------------------------------------------------------------- rewards, parsers


def _r1_zero_string_compare(response, ground_truth, fast=True):
    result = rewards.r1_zero_reward_fn(response, ground_truth, fast)
    if result["format_reward"] == 1.0:
        answer = response.split("<answer>")[-1].replace("</answer>", "").strip()
        answer = rewards.boxed_content(answer) or answer
        right = float(answer.strip() == str(ground_truth).strip())
        return {"format_reward": 1.0, "answer_reward": right, "reward": right}
    return result


def _r1_zero_loose_format(response, ground_truth, fast=True):
    """Any <answer>...</answer> counts as formatted: no </think> required."""
    if "<answer>" in response and "</answer>" in response and "</think>" not in response:
        response = response.replace("<answer>", "</think> <answer>", 1)
    return rewards.r1_zero_reward_fn(response, ground_truth, fast)


def _gsm8k_first_number(model_output):
    numbers = rewards.NUMBER.findall(model_output)
    return numbers[0].replace(",", "") if numbers else None


def _gsm8k_integers_only(model_output):
    import re

    numbers = re.findall(r"\d+", model_output)
    return numbers[-1] if numbers else None


def _mmlu_any_letter(mmlu_example, model_output):
    import re

    match = re.search(r"\b([ABCD])\b", model_output)
    return match.group(1) if match else None


# --------------------------------------------------------------------------------------------- packed data, DPO


class _PackedVariant(sft_data.PackedSFTDataset):
    eos, keep_tail, separate_labels = True, False, False

    def __init__(self, tokenizer, dataset_path, seq_length, shuffle):
        documents = sft_data.read_jsonl(dataset_path)
        tokens = []
        for doc in documents:
            tokens += tokenizer.encode(ALPACA_TEMPLATE.format(prompt=doc["prompt"], response=doc["response"]))
            tokens += [tokenizer.eos_token_id] * self.eos
        self.tokens, self.seq_length = torch.tensor(tokens), seq_length

    def __len__(self):
        n, m = len(self.tokens), self.seq_length
        if self.separate_labels:
            return n // (m + 1)
        return -(-(n - 1) // m) if self.keep_tail else (n - 1) // m

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(i)
        m = self.seq_length
        if self.separate_labels:  # chunks of m + 1 tokens, labels within the chunk: one token per chunk lost
            chunk = self.tokens[i * (m + 1):(i + 1) * (m + 1)]
            return {"input_ids": chunk[:-1], "labels": chunk[1:]}
        inputs, labels = self.tokens[i * m:(i + 1) * m], self.tokens[i * m + 1:(i + 1) * m + 1]
        pad = m - len(labels)  # the tail padded with EOS
        eos = int(self.tokens[-1])
        return {"input_ids": F.pad(inputs, (0, m - len(inputs)), value=eos), "labels": F.pad(labels, (0, pad), value=eos)}


class _PackedWithoutEOS(_PackedVariant):
    eos = False


class _PackedKeepsTail(_PackedVariant):
    keep_tail = True


class _PackedLabelsWithinChunk(_PackedVariant):
    separate_labels = True


def _batches_drop_last(dataset, batch_size, shuffle):
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=True)


def _batches_always_shuffled(dataset, batch_size, shuffle):
    return DataLoader(dataset, batch_size=batch_size, shuffle=True)


def _dpo_variant(lm, lm_ref, tokenizer, beta, prompt, response_chosen, response_rejected, *, swap_reference=False,
                 eos=True, template=True):
    device = next(lm.parameters()).device
    texts = [ALPACA_TEMPLATE.format(prompt=prompt, response=r) if template else prompt + r
             for r in (response_chosen, response_rejected)]
    chosen, rejected = (tokenizer.encode(t) + [tokenizer.eos_token_id] * eos for t in texts)
    policy = dpo.sequence_log_prob(lm, chosen, device) - dpo.sequence_log_prob(lm, rejected, device)
    with torch.no_grad():
        reference = dpo.sequence_log_prob(lm_ref, chosen, device) - dpo.sequence_log_prob(lm_ref, rejected, device)
    if swap_reference:
        reference = -reference
    return -F.logsigmoid(beta * (policy - reference))


MUTANTS: list[Mutant] = [
    Mutant("tokenize_jointly", "tokenize_prompt_and_output", "prompt + output tokenized as one string",
           partial(_tokenize_variant, joint=True)),
    Mutant("tokenize_mask_not_shifted", "tokenize_prompt_and_output", "the response mask follows the inputs, not the "
           "labels", partial(_tokenize_variant, unshifted_mask=True)),
    Mutant("tokenize_pads_with_zero", "tokenize_prompt_and_output", "pads with id 0, not the pad id",
           partial(_tokenize_variant, pad_id=0)),
    Mutant("entropy_unstable", "compute_entropy", "softmax without the max subtracted: NaN for large logits",
           _entropy_unstable),
    Mutant("entropy_sign", "compute_entropy", "Σ p log p without the minus", _entropy_sign),
    Mutant("log_probs_of_inputs", "get_response_log_probs", "gathers the log-probs at input_ids, not labels",
           partial(_log_probs_variant, of_inputs=True)),
    # strict: the key's absence is the kit's convention
    Mutant("log_probs_entropy_always", "get_response_log_probs", "returns token_entropy when not asked",
           partial(_log_probs_variant, entropy_always=True), level="strict"),
    Mutant("masked_mean_ignores_mask", "masked_mean", "the mean over every position", _masked_mean_ignores_mask),
    # strict: tensor · mask is the course's own formula; NaN at masked positions is the kit's extra
    Mutant("masked_mean_multiplies_mask", "masked_mean", "tensor · mask: a NaN at a masked position leaks",
           _masked_mean_multiplied, level="strict"),
    Mutant("masked_normalize_by_count", "masked_normalize", "divides by the mask count, not the constant",
           _masked_normalize_by_count),
    Mutant("sft_not_divided_by_accumulation", "sft_microbatch_train_step", "loss not divided by "
           "gradient_accumulation_steps", partial(_sft_variant, accumulate=False)),
    Mutant("sft_token_mean", "sft_microbatch_train_step", "the mean over response tokens instead of the normalized "
           "sum", partial(_sft_variant, token_mean=True)),
    Mutant("group_std_biased", "compute_group_normalized_rewards", "std with n, not n − 1",
           partial(_group_variant, unbiased=False)),
    Mutant("group_interleaved", "compute_group_normalized_rewards", "groups taken as every n-th response, not "
           "contiguous", partial(_group_variant, interleaved=True)),
    Mutant("group_always_std", "compute_group_normalized_rewards", "divides by the std even when normalize_by_std is "
           "False", partial(_group_variant, always_std=True)),
    Mutant("naive_loss_sign", "compute_naive_policy_gradient_loss", "+A · log p: ascends the loss", _naive_sign),
    Mutant("grpo_clip_wrong_side", "compute_grpo_clip_loss", "max instead of min: the clip on the wrong side",
           partial(_grpo_clip_variant, wrong_side=True)),
    Mutant("grpo_clip_ratio_inverted", "compute_grpo_clip_loss", "ratio old / new",
           partial(_grpo_clip_variant, inverted_ratio=True)),
    Mutant("dispatch_baseline_uses_raw_rewards", "compute_policy_gradient_loss", "reinforce_with_baseline on the raw "
           "rewards", partial(_dispatch_variant, baseline_uses_raw=True)),
    # strict: ValueError for a missing argument is the kit's convention; the handout shows assertions
    Mutant("dispatch_asserts", "compute_policy_gradient_loss", "AssertionError for a missing argument",
           partial(_dispatch_variant, asserts=True), level="strict"),
    Mutant("grpo_step_token_mean", "grpo_microbatch_train_step", "one mean over every response token of the batch, "
           "not per-sequence means", partial(_grpo_step_variant, token_mean=True)),
    Mutant("grpo_step_not_divided_by_accumulation", "grpo_microbatch_train_step", "loss not divided by "
           "gradient_accumulation_steps", partial(_grpo_step_variant, accumulate=False)),
    Mutant("r1_zero_string_compare", "r1_zero_reward_fn", "answers compared as strings: 1/2 is not 0.5",
           _r1_zero_string_compare),
    Mutant("r1_zero_loose_format", "r1_zero_reward_fn", "formatted without </think>", _r1_zero_loose_format),
    Mutant("gsm8k_first_number", "parse_gsm8k_response", "the first number, not the last", _gsm8k_first_number),
    # strict: the number forms beyond plain integers are the kit's extras
    Mutant("gsm8k_integers_only", "parse_gsm8k_response", "digits only: 1,000 gives 000, -3 gives 3",
           _gsm8k_integers_only, level="strict"),
    Mutant("mmlu_any_letter", "parse_mmlu_response", "the first stand-alone A–D anywhere", _mmlu_any_letter),
    Mutant("packed_without_eos", "PackedSFTDataset", "documents concatenated without EOS", _PackedWithoutEOS),
    Mutant("packed_keeps_tail", "PackedSFTDataset", "the incomplete last chunk kept, padded", _PackedKeepsTail),
    Mutant("packed_labels_within_chunk", "PackedSFTDataset", "chunks of m + 1 tokens with labels inside each",
           _PackedLabelsWithinChunk),
    Mutant("batches_drop_last", "iterate_batches", "the last, smaller batch dropped", _batches_drop_last),
    Mutant("batches_always_shuffled", "iterate_batches", "shuffles even when shuffle is False",
           _batches_always_shuffled),
    Mutant("dpo_reference_swapped", "compute_per_instance_dpo_loss", "the reference's chosen and rejected terms "
           "swapped", partial(_dpo_variant, swap_reference=True)),
    Mutant("dpo_without_eos", "compute_per_instance_dpo_loss", "no EOS after the response",
           partial(_dpo_variant, eos=False)),
    Mutant("dpo_without_template", "compute_per_instance_dpo_loss", "prompt + response without the Alpaca template",
           partial(_dpo_variant, template=False)),
]
