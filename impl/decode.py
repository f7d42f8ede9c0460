"""Reference decoding: temperature scaling, nucleus (top-p) sampling and the generation loop (A1 §6).

The normative text for every convention is in ``spec/decode.py``. There is no KV cache: each
step runs the model on the whole window, as the handout describes; for the small models of the
course that is fast enough, and it keeps the loop obviously right.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from impl.nn import softmax

# The components of spec/decode.py, with the same names.
__all__ = ["sample_next_token", "decode"]


def check_sampling_arguments(temperature: float, top_p: float) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")


def nucleus(probs: Tensor, top_p: float) -> Tensor:
    """Keep V(p), the smallest set of the most probable tokens with total ≥ p; renormalize (A1 §6)."""
    # Stable descending sort: among equal probabilities the lower token id comes first.
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)  # (..., vocab) each
    cumulative = sorted_probs.cumsum(dim=-1)
    before = torch.cat([torch.zeros_like(cumulative[..., :1]), cumulative[..., :-1]], dim=-1)  # mass ranked above
    # A token is kept while the mass ranked above it is still short of p: this keeps the token that
    # crosses p, and the most probable token always (nothing is ranked above it).
    keep_sorted = before < top_p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)  # back to vocabulary order
    kept = torch.where(keep, probs, torch.zeros_like(probs))
    return kept / kept.sum(dim=-1, keepdim=True)


def sample_next_token(logits: Tensor, temperature: float, top_p: float,
                      generator: torch.Generator | None = None) -> Tensor:
    """One id per row: greedy at τ = 0, else a draw from top-p-filtered softmax(v / τ) (A1 §6, eq. 24)."""
    check_sampling_arguments(temperature, top_p)
    logits = logits.float()  # fp16 logits / τ would overflow; the spec computes in float32
    if temperature == 0:
        return logits.argmax(dim=-1)  # the τ → 0 limit; argmax returns the first maximum: ties to the lowest id
    probs = softmax(logits / temperature, dim=-1)  # (..., vocab)
    if top_p < 1:
        probs = nucleus(probs, top_p)
    rows = probs.reshape(-1, probs.shape[-1])  # (rows, vocab): multinomial takes one or two dims
    ids = torch.multinomial(rows, num_samples=1, generator=generator)  # (rows, 1)
    return ids.reshape(probs.shape[:-1])  # (...,)


@torch.no_grad()
def decode(model: nn.Module, prompt: Tensor, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
           end_of_text_id: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Sample up to ``max_new_tokens`` ids after ``prompt``; stop after ``end_of_text_id`` (A1 §6)."""
    if prompt.dim() != 1 or prompt.numel() == 0:
        raise ValueError(f"prompt must be a non-empty 1-D tensor of token ids, got shape {tuple(prompt.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    check_sampling_arguments(temperature, top_p)
    was_training = model.training
    model.eval()
    try:
        ids = prompt.long()  # (t,): the prompt, then every generated id appended
        for _ in range(max_new_tokens):
            window = ids[-model.context_length:]  # sliding window: only the last context_length ids fit
            logits = model(window.unsqueeze(0))[0, -1]  # (1, t, vocab) -> the last position's (vocab,)
            next_id = sample_next_token(logits, temperature, top_p, generator)  # 0-dim
            ids = torch.cat([ids, next_id.reshape(1).to(ids.device)])
            if end_of_text_id is not None and int(next_id) == end_of_text_id:
                break
        return ids[len(prompt):]
    finally:
        model.train(was_training)
