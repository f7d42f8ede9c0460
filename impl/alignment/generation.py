"""Rollout generation behind one interface (A5 §3.1, §7): a backend samples completions of text prompts and takes the
training policy's weights after each GRPO step.

Backends: ``transformers_backend.TransformersBackend`` (any Hugging Face causal LM; the fallback where vLLM is
absent), ``kit_backend.KitLMBackend`` (the kit's own TransformerLM, with a KV cache) and
``vllm_backend.VLLMBackend`` (vLLM's offline engine, in-process). The sampling settings are the handout's
``SamplingParams``: temperature, top-p, max_tokens, a stop string kept in the output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from torch import Tensor

# The handout's rollouts (A5 §3.1): stop once the answer is closed, and keep "</answer>" so the reward sees it.
R1_ZERO_STOP = ("</answer>",)


@dataclass(frozen=True)
class Sampling:
    """How to sample: vLLM's ``SamplingParams`` fields the course uses, with its meaning."""

    temperature: float = 1.0  # 0 is greedy decoding
    top_p: float = 1.0  # nucleus sampling: the smallest set of tokens of total probability >= top_p
    max_tokens: int = 1024  # new tokens per completion, the stop string included
    n: int = 1  # completions per prompt: the GRPO group size
    stop: tuple[str, ...] = R1_ZERO_STOP  # generation ends after the first of these; the text keeps it
    seed: int = 0  # the same seed, prompts and weights give the same completions on one backend

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.n < 1:
            raise ValueError(f"n (completions per prompt) must be >= 1, got {self.n}")
        if any(not s for s in self.stop):
            raise ValueError("a stop string must not be empty")


class GenerationBackend(Protocol):
    """What the SFT / GRPO / evaluation programs sample with."""

    def generate(self, prompts: Sequence[str], sampling: Sampling) -> list[str]:
        """``len(prompts) * sampling.n`` completions (the text after the prompt), each prompt's ``n`` contiguous:
        the order ``compute_group_normalized_rewards`` reads groups in. A completion ends at the first stop string
        (kept), at the end-of-text token (dropped) or after ``max_tokens`` tokens. A prompt that leaves no room in
        the model's context for one new token is a ValueError naming it, raised before any sampling."""
        ...

    def load_weights(self, state_dict: Mapping[str, Tensor]) -> None:
        """Take the policy's weights (its ``state_dict()`` keys): later completions come from them."""
        ...


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to and including the earliest stop string, and whether one was found."""
    ends = [i + len(s) for s in stop if (i := text.find(s)) >= 0]
    return (text[:min(ends)], True) if ends else (text, False)
