"""Generating text: temperature, nucleus (top-p) sampling and the decoding loop (handout A1 §6).

The docstrings are normative.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

# This area's components, in the report's order (spec.COMPONENTS is built from them).
__all__ = ["sample_next_token", "decode"]


def sample_next_token(logits: Float[Tensor, "... vocab"], temperature: float, top_p: float,
                      generator: torch.Generator | None = None) -> Int[Tensor, "..."]:
    """Draw one token id per row of next-token logits v, with temperature τ and top-p (A1 §6, eq. 24).

    - Returns int64 ids of shape ``logits.shape[:-1]`` on the logits' device; a single row (vocab,)
      gives a 0-dim tensor. Every row is sampled independently.
    - (strict) Computed in float32 whatever the logits' dtype (fp16 logits of magnitude 6·10⁴ at
      τ = 0.5 must not overflow).
    - Temperature: q = softmax(v / τ) (with the max subtracted). τ = 0 is the τ → 0 limit:
      greedy, the argmax of v, ties to the lowest id.
    - Nucleus: V(p) is the smallest set of the most probable tokens whose total probability under
      q is ≥ p. Sort q descending, ties in probability broken by the lower token id first, and
      keep tokens up to and including the one whose running total first reaches p: the token that
      crosses p is kept, and the most probable token always is. p = 1 keeps every token. The kept
      probabilities are renormalized to sum to 1; the others get probability exactly 0.
    - (strict) τ < 0 raises ValueError naming ``temperature``; p outside (0, 1] raises ValueError
      naming ``top_p``.
    - Sampling: ``torch.multinomial`` on the renormalized probabilities with ``generator`` (None:
      torch's global generator); a generator in the same state gives the same ids.
    """
    ...


def decode(model: torch.nn.Module, prompt: Int[Tensor, " t"], max_new_tokens: int, temperature: float = 1.0,
           top_p: float = 1.0, end_of_text_id: int | None = None,
           generator: torch.Generator | None = None) -> Int[Tensor, " n"]:
    """Sample a completion of ``prompt`` from ``model``, one token at a time (A1 §6).

    - ``model`` is a ``TransformerLM`` (spec/nn.py) or any ``torch.nn.Module`` that has a
      ``context_length`` attribute and maps (1, t) token ids to (1, t, vocab) logits.
    - Each step calls the model once, on a (1, t) int64 batch of the ids so far (the prompt, then
      the generated ids appended), takes the logits of the *last* position, and draws the next id
      exactly as ``sample_next_token(logits, temperature, top_p, generator)`` does.
    - Sliding window: when the ids so far exceed ``model.context_length``, only the last
      ``context_length`` ids are fed (the prompt itself may be longer than the context).
    - Stops after ``max_new_tokens`` ids, or right after generating ``end_of_text_id`` (None: never
      stops early); an ``end_of_text_id`` in the prompt does not stop anything.
    - Returns only the generated ids: a 1-D int64 tensor of length n ≤ ``max_new_tokens`` on the
      prompt's device, ending with ``end_of_text_id`` when that stopped it. max_new_tokens = 0
      returns an empty tensor.
    - (strict) Runs under ``torch.no_grad()`` with the model in eval mode, and restores ``model.training``
      afterwards (also when the model raises).
    - (strict) Errors, raised before any model call, as ValueError naming the argument: a prompt that is
      not 1-D or is empty (``prompt``), ``max_new_tokens`` < 0, ``temperature`` < 0, ``top_p``
      outside (0, 1].
    - The same generator seed gives the same output.
    """
    ...
