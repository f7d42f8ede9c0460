"""The per-instance DPO loss (supplement §5.3, eq. 3): Alpaca-formatted prompt and response with an EOS, whole-
sequence log-probabilities under the policy and the reference model."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spec.alignment import ALPACA_TEMPLATE


def sequence_log_prob(model, ids: list[int], device) -> torch.Tensor:
    """Σ_t log p(x_t | x_<t) over every token after the first."""
    x = torch.tensor([ids], dtype=torch.long, device=device)
    logits = model(x).logits[0, :-1].float()  # (T - 1, V): the prediction of each next token
    return torch.log_softmax(logits, dim=-1).gather(-1, x[0, 1:, None]).sum()


def compute_per_instance_dpo_loss(lm, lm_ref, tokenizer, beta: float, prompt: str, response_chosen: str,
                                  response_rejected: str) -> torch.Tensor:
    device, ref_device = next(lm.parameters()).device, next(lm_ref.parameters()).device
    chosen, rejected = (tokenizer.encode(ALPACA_TEMPLATE.format(prompt=prompt, response=r)) + [tokenizer.eos_token_id]
                        for r in (response_chosen, response_rejected))
    policy = sequence_log_prob(lm, chosen, device) - sequence_log_prob(lm, rejected, device)
    with torch.no_grad():
        reference = sequence_log_prob(lm_ref, chosen, ref_device) - sequence_log_prob(lm_ref, rejected, ref_device)
    return -F.logsigmoid(beta * (policy - reference.to(device)))
