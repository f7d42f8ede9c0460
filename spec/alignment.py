"""Alignment: SFT and GRPO helpers (handout A5 §4, §7), the MATH r1_zero reward (§3.2), and the supplement's MMLU /
GSM8K parsers, packed SFT data and per-instance DPO loss (A5 supplement §2, §3.2, §5.3). The docstrings are normative.

Tensors are (batch_size, sequence_length) unless said otherwise; masks are True (or 1) on the positions that count.
Tokenizers are Hugging Face ``PreTrainedTokenizerBase`` objects; models are causal LMs whose ``model(input_ids)``
has ``.logits`` of shape (batch, seq, vocab) (any ``transformers`` ``PreTrainedModel``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, Literal, Protocol

import torch
from jaxtyping import Float, Int
from torch import Tensor

# This area's components, in the report's order (spec.COMPONENTS is built from them).
__all__ = [
    "tokenize_prompt_and_output", "compute_entropy", "get_response_log_probs", "masked_mean", "masked_normalize",
    "sft_microbatch_train_step", "compute_group_normalized_rewards", "compute_naive_policy_gradient_loss",
    "compute_grpo_clip_loss", "compute_policy_gradient_loss", "grpo_microbatch_train_step", "r1_zero_reward_fn",
    "parse_gsm8k_response", "parse_mmlu_response", "PackedSFTDataset", "iterate_batches",
    "compute_per_instance_dpo_loss",
]

LossType = Literal["no_baseline", "reinforce_with_baseline", "grpo_clip"]
LOSS_TYPES = ("no_baseline", "reinforce_with_baseline", "grpo_clip")

# The Alpaca template of the supplement (§3.2.1), used by the packed SFT dataset and the DPO loss.
ALPACA_TEMPLATE = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
                   "request.\n\n### Instruction:\n{prompt}\n\n### Response:\n{response}")


def tokenize_prompt_and_output(prompt_strs: list[str], output_strs: list[str],
                               tokenizer: Any) -> dict[str, Tensor]:
    """Tokenize prompts and outputs for scoring (A5 §4.2).

    - Each prompt and each output are tokenized *separately* (``tokenizer(s, add_special_tokens=False)`` or
      ``tokenizer.encode``, no special tokens added) and concatenated: prompt ids then output ids. Tokenizing
      ``prompt + output`` as one string is wrong: the tokens at the seam differ.
    - Sequences are right-padded with ``tokenizer.pad_token_id`` to L = max(len(prompt) + len(output)); then
      ``input_ids`` = the padded ids without their last column, ``labels`` = without their first column: both
      (batch, L − 1), int64.
    - ``response_mask`` (batch, L − 1): True exactly on the label positions that hold output tokens (positions
      len(prompt) − 1 … len(prompt) + len(output) − 2), False on prompt and padding labels. A 0/1 integer mask is
      accepted at the course level; (strict) it is a bool tensor.
    """
    ...


def compute_entropy(logits: Float[Tensor, "... vocab"]) -> Float[Tensor, "..."]:
    """Entropy of the next-token distribution at each position, −Σ p log p over the last dim (A5 §4.2, eq. 1).

    - Through logsumexp: finite and exact for logits of any scale (×1000 included); a position where one logit
      dominates has entropy 0, not NaN.
    - Shape: ``logits`` without its last dim.
    """
    ...


def get_response_log_probs(model: torch.nn.Module, input_ids: Int[Tensor, "B T"], labels: Int[Tensor, "B T"],
                           return_token_entropy: bool = False) -> dict[str, Tensor]:
    """Per-token conditional log-probabilities log p(labels[b, t] | input_ids[b, :t+1]) under ``model`` (A5 §4.2).

    - ``{"log_probs": (B, T)}`` from ``model(input_ids).logits`` (log-softmax gathered at the labels), and with
      ``return_token_entropy=True`` also ``"token_entropy"``: (B, T), ``compute_entropy`` of the same logits.
    - Gradients flow to the model's parameters (the caller decides on ``torch.no_grad``).
    - (strict) Without ``return_token_entropy`` the dict has no ``"token_entropy"`` key.
    """
    ...


def masked_mean(tensor: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``tensor`` over the positions where ``mask`` is True/1, along ``dim`` or over all (A5 §7.3).

    - Σ(tensor · mask) / Σ mask along ``dim`` (shape as ``tensor.mean(dim)``); ``dim=None``: one scalar over every
      masked element. What the masked-out positions hold never matters (NaN and inf included) and gets no gradient.
    - (strict) A row (or tensor) with an empty mask gives NaN (0/0), as the plain formula does.
    """
    ...


def masked_normalize(tensor: Tensor, mask: Tensor, normalize_constant: float = 1.0, dim: int | None = None) -> Tensor:
    """Σ(tensor · mask) along ``dim`` (all dims when None), divided by ``normalize_constant`` (A5 §4.2).

    Masked-out positions never matter, whatever they hold. The course's adapter orders the arguments
    (tensor, mask, dim, normalize_constant): call it with keywords.
    """
    ...


def sft_microbatch_train_step(policy_log_probs: Float[Tensor, "B T"], response_mask: Tensor,
                              gradient_accumulation_steps: int,
                              normalize_constant: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """One SFT microbatch: the masked negative log-likelihood, scaled for gradient accumulation, backpropagated
    (A5 §4.2).

    - loss = −Σ(policy_log_probs · mask) / normalize_constant / batch_size / gradient_accumulation_steps: the sum
      of masked log-probs per sequence (``masked_normalize`` along the sequence), averaged over the batch, divided
      by the accumulation steps.
    - Calls ``loss.backward()``; returns ``(loss, metadata)``, the loss a scalar tensor (the scaled one).
    """
    ...


def compute_group_normalized_rewards(
    reward_fn: Callable[[str, str], dict[str, float]], rollout_responses: list[str],
    repeated_ground_truths: list[str], group_size: int, advantage_eps: float, normalize_by_std: bool,
) -> tuple[Float[Tensor, " n"], Float[Tensor, " n"], dict[str, float]]:
    """Rewards of rollouts and their group-normalized advantages (A5 §7.2, eq. 28, 31).

    - ``raw_rewards[i] = reward_fn(rollout_responses[i], repeated_ground_truths[i])["reward"]``.
    - Groups are *contiguous*: responses i·G … i·G + G − 1 answer the same prompt (G = group_size).
    - Advantage = reward − group mean, divided by (group std + advantage_eps) when ``normalize_by_std``; the std is
      the unbiased one (n − 1, ``torch.std``'s default). Every group's advantages therefore sum to 0.
    - Returns ``(advantages, raw_rewards, metadata)``: two float tensors of shape (rollout_batch_size,), and a dict
      of statistics. (strict) The metadata holds Python floats (mean, std, max, min of the raw rewards, say).
    - (strict) A rollout count that is not a multiple of ``group_size``, or a ground-truth list of another length,
      raises ValueError.
    """
    ...


def compute_naive_policy_gradient_loss(raw_rewards_or_advantages: Float[Tensor, "B 1"],
                                       policy_log_probs: Float[Tensor, "B T"]) -> Float[Tensor, "B T"]:
    """Per-token −A · log p(o_t) with the (B, 1) rewards or advantages broadcast over the sequence (A5 §7.3, eq. 32).
    """
    ...


def compute_grpo_clip_loss(advantages: Float[Tensor, "B 1"], policy_log_probs: Float[Tensor, "B T"],
                           old_log_probs: Float[Tensor, "B T"],
                           cliprange: float) -> tuple[Float[Tensor, "B T"], dict[str, Tensor]]:
    """Per-token GRPO-Clip loss, −min(ρ A, clip(ρ, 1 − ε, 1 + ε) A) with ρ = exp(policy − old) (A5 §7.3, eq. 33).

    - Returns ``(loss, metadata)``. Where the clipped term is the smaller one (ρ beyond 1 + ε with A > 0, below
      1 − ε with A < 0) the token contributes no gradient.
    - (strict) ``metadata["clipped"]``: (B, T) bool, True where the clipped term is strictly smaller than ρ A;
      ``metadata["clip_fraction"]``: a scalar tensor, the share of True.
    """
    ...


def compute_policy_gradient_loss(policy_log_probs: Float[Tensor, "B T"], loss_type: LossType,
                                 raw_rewards: Tensor | None = None, advantages: Tensor | None = None,
                                 old_log_probs: Tensor | None = None,
                                 cliprange: float | None = None) -> tuple[Float[Tensor, "B T"], dict[str, Tensor]]:
    """Dispatch on ``loss_type`` (A5 §7.3): ``"no_baseline"`` is the naive loss on ``raw_rewards``,
    ``"reinforce_with_baseline"`` the naive loss on ``advantages``, ``"grpo_clip"`` ``compute_grpo_clip_loss`` on
    ``advantages``, ``old_log_probs`` and ``cliprange``. Returns ``(per-token loss, metadata)``.

    - (strict) An unknown ``loss_type``, or an argument its loss needs left None, raises ValueError (the
      handout's "argument checks"; an AssertionError is not a ValueError).
    """
    ...


def grpo_microbatch_train_step(policy_log_probs: Float[Tensor, "B T"], response_mask: Tensor,
                               gradient_accumulation_steps: int, loss_type: LossType,
                               raw_rewards: Tensor | None = None, advantages: Tensor | None = None,
                               old_log_probs: Tensor | None = None,
                               cliprange: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """One GRPO microbatch (A5 §7.3): the per-token loss of ``compute_policy_gradient_loss``, ``masked_mean`` over
    each sequence's response tokens, the mean over the batch, divided by ``gradient_accumulation_steps``;
    ``loss.backward()`` is called; returns ``(loss, metadata)``, the loss the scaled scalar."""
    ...


def r1_zero_reward_fn(response: str, ground_truth: str, fast: bool = True) -> dict[str, float]:
    """The reward of a response to the r1_zero prompt (A5 §3.2; the course's ``drgrpo_grader.r1_zero_reward_fn``).

    - Format: the response holds ``"</think> <answer>"`` and then ``"</answer>"``; otherwise all three rewards are 0.
    - Answer: the text after the last ``<answer>`` with ``</answer>`` removed (a ``\\boxed{…}`` in it: its content),
      compared with the ground truth for mathematical equivalence: ``1/2``, ``\\frac{1}{2}`` and ``0.5`` are the
      same answer; ``15`` is not ``72``. The reference compares through math-verify.
    - Returns ``{"format_reward", "answer_reward", "reward"}`` as floats: (1, 1, 1) formatted and right, (1, 0, 0)
      formatted and wrong, (0, 0, 0) unformatted. ``fast`` is the course's switch (skip the slow symbolic checks).
    - (strict) The rewards are Python floats, and the function works outside the main thread (rollouts scored in a
      thread pool): no signal-based timeout.
    """
    ...


def parse_gsm8k_response(model_output: str) -> str | None:
    """The last number in ``model_output``, as written (``"72"``), or None when there is none (supplement §2.2).

    - (strict) A number is an optional minus sign, digits with optional thousands commas and decimals: the commas
      are dropped (``"1,000"`` gives ``"1000"``), a sentence's full stop is not a decimal point.
    """
    ...


def parse_mmlu_response(mmlu_example: dict[str, Any], model_output: str) -> str | None:
    """The letter the model chose, from "The correct answer is X" (X in A–D), or None (supplement §2.1).

    ``mmlu_example`` has ``"subject"``, ``"question"``, ``"options"`` (four strings) and ``"answer"``.
    """
    ...


class PackedSFTDataset(Protocol):
    """Instruction-tuning documents packed into constant-length sequences (supplement §3.2.1); a
    ``torch.utils.data.Dataset``.

    - ``PackedSFTDataset(tokenizer, dataset_path, seq_length, shuffle)``: ``dataset_path`` is JSONL (possibly
      gzipped) with ``"prompt"`` and ``"response"``; each document is ``ALPACA_TEMPLATE`` filled in, tokenized with
      the tokenizer's own special tokens (its BOS, where it has one), then its EOS id appended; the documents are
      concatenated, in file order unless ``shuffle``.
    - With N concatenated tokens and m = ``seq_length``: ``len`` is (N − 1) // m; item i is ``{"input_ids":
      tokens[i·m : (i+1)·m], "labels": tokens[i·m + 1 : (i+1)·m + 1]}``, int64 tensors of shape (m,). The labels run
      across chunk boundaries; the tail without a full chunk is dropped.
    """

    def __init__(self, tokenizer: Any, dataset_path: str | os.PathLike, seq_length: int, shuffle: bool): ...

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> dict[str, Tensor]: ...


def iterate_batches(dataset: Any, batch_size: int, shuffle: bool) -> Iterable[dict[str, Tensor]]:
    """One epoch of batches from a dataset like ``PackedSFTDataset`` (supplement §3.2.1).

    - Every item exactly once; batches of ``batch_size`` (the last one smaller when it does not divide), each a
      dict of stacked tensors (``"input_ids"`` (b, m), ``"labels"`` (b, m)); in order unless ``shuffle``.
    """
    ...


def compute_per_instance_dpo_loss(lm: torch.nn.Module, lm_ref: torch.nn.Module, tokenizer: Any, beta: float,
                                  prompt: str, response_chosen: str, response_rejected: str) -> Float[Tensor, ""]:
    """The per-instance DPO loss (supplement §5.3, eq. 3).

    - Each sequence is ``ALPACA_TEMPLATE`` with the prompt and the response, tokenized, with the EOS id appended;
      its log-probability is the sum of log p(x_t | x_<t) over every token after the first (the prompt's share
      cancels in the differences).
    - loss = −log σ(β((log π(chosen) − log π(rejected)) − (log π_ref(chosen) − log π_ref(rejected)))), a scalar on
      ``lm``'s device (``lm_ref`` may be on another), differentiable with respect to ``lm``'s parameters only.
    """
    ...
