"""SFT helpers (A5 §4.2): tokenizing prompt and output, per-token entropy and log-probs, masked reductions, the
SFT microbatch step. The GRPO step (grpo.py) reuses the log-probs and the masked mean."""

from __future__ import annotations

import torch
from torch import Tensor


def tokenize_prompt_and_output(prompt_strs: list[str], output_strs: list[str], tokenizer) -> dict[str, Tensor]:
    if len(prompt_strs) != len(output_strs):
        raise ValueError(f"prompt_strs has {len(prompt_strs)} strings but output_strs has {len(output_strs)}")
    # Separately: the tokens at the seam of prompt + output tokenized as one string may differ.
    prompts = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompt_strs]
    outputs = [tokenizer(o, add_special_tokens=False)["input_ids"] for o in output_strs]
    length = max(len(p) + len(o) for p, o in zip(prompts, outputs))
    ids = torch.full((len(prompts), length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), length), dtype=torch.bool)
    for i, (p, o) in enumerate(zip(prompts, outputs)):
        ids[i, :len(p) + len(o)] = torch.tensor(p + o, dtype=torch.long)
        mask[i, len(p):len(p) + len(o)] = True
    # (B, L) -> inputs and labels (B, L - 1); the mask follows the labels.
    return {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "response_mask": mask[:, 1:]}


def compute_entropy(logits: Tensor) -> Tensor:
    log_p = logits - torch.logsumexp(logits, dim=-1, keepdim=True)  # stable log-softmax
    # −Σ p log p; where p underflows to 0, p · log p is 0 (log p is finite: no 0 · inf).
    return -(log_p.exp() * log_p).sum(dim=-1)


def get_response_log_probs(model, input_ids: Tensor, labels: Tensor,
                           return_token_entropy: bool = False) -> dict[str, Tensor]:
    logits = model(input_ids).logits  # (B, T, V)
    log_probs = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    out = {"log_probs": log_probs}
    if return_token_entropy:
        out["token_entropy"] = compute_entropy(logits)
    return out


def masked_sum(tensor: Tensor, mask: Tensor, dim: int | None) -> Tensor:
    # where, not multiply: a masked-out NaN or inf times 0 would still be NaN.
    kept = torch.where(mask.bool(), tensor, torch.zeros((), dtype=tensor.dtype, device=tensor.device))
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(tensor: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    count = mask.to(tensor.dtype).sum() if dim is None else mask.to(tensor.dtype).sum(dim=dim)
    return masked_sum(tensor, mask, dim) / count  # an empty mask: 0/0 = NaN


def masked_normalize(tensor: Tensor, mask: Tensor, normalize_constant: float = 1.0, dim: int | None = None) -> Tensor:
    return masked_sum(tensor, mask, dim) / normalize_constant


def sft_microbatch_train_step(policy_log_probs: Tensor, response_mask: Tensor, gradient_accumulation_steps: int,
                              normalize_constant: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    per_sequence = masked_normalize(policy_log_probs, response_mask, normalize_constant, dim=-1)  # (B,)
    loss = -per_sequence.mean() / gradient_accumulation_steps
    loss.backward()
    return loss, {"nll": -per_sequence.detach().mean(), "response_tokens": response_mask.sum().detach()}
