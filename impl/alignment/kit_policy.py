"""The kit's own TransformerLM and BPE tokenizer as an A5 policy: the Hugging Face calling conventions the alignment
components use (``model(input_ids).logits``, ``tokenizer(text, add_special_tokens=False)["input_ids"]``), and a
rollout backend that samples with a KV cache. Small and fast on a CPU: the policy of the kit's GRPO tests."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from impl.alignment.generation import Sampling, cut_at_stop
from impl.decode import sample_next_token
from impl.nn import KVCache, TransformerLM
from impl.tokenizer import Tokenizer

END_OF_TEXT = "<|endoftext|>"


@dataclass
class LMOutput:
    logits: Tensor  # (batch, seq, vocab)


class KitPolicy(TransformerLM):
    """A TransformerLM whose forward returns ``LMOutput``: the same parameters and state-dict keys."""

    def forward(self, input_ids: Tensor, cache: KVCache | None = None) -> LMOutput:
        return LMOutput(super().forward(input_ids, cache))


class KitTokenizer:
    """The kit's Tokenizer called as a Hugging Face tokenizer; the end-of-text special pads and ends completions."""

    def __init__(self, tokenizer: Tokenizer):
        if END_OF_TEXT not in tokenizer.special_ids:
            raise ValueError(f"the tokenizer needs the special token {END_OF_TEXT!r}: it ends completions and pads")
        self.tokenizer = tokenizer
        self.eos_token_id = self.pad_token_id = tokenizer.special_ids[END_OF_TEXT]

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": self.tokenizer.encode(text)}  # the kit's tokenizer adds no special tokens

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def __len__(self) -> int:
        return len(self.tokenizer.vocab)


def byte_tokenizer() -> KitTokenizer:
    """The 256 bytes and end-of-text, no merges: a vocabulary of 257 for tiny policies."""
    return KitTokenizer(Tokenizer({b: bytes([b]) for b in range(256)}, [], [END_OF_TEXT]))


class KitLMBackend:
    """Rollouts of a KitPolicy (its own copy of the weights), one prompt at a time: the prompt is run once into the
    KV cache, then its n samples decode together, one new token per step each; finished samples leave the batch."""

    def __init__(self, policy: KitPolicy, tokenizer: KitTokenizer):
        self.model = copy.deepcopy(policy).eval()
        self.tokenizer = tokenizer

    def load_weights(self, state_dict: Mapping[str, Tensor]) -> None:
        self.model.load_state_dict(state_dict)

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], sampling: Sampling) -> list[str]:
        encoded = [self.tokenizer.encode(p) for p in prompts]
        room = self.model.context_length
        for i, ids in enumerate(encoded):
            if not ids or len(ids) >= room:
                raise ValueError(f"prompt {i} has {len(ids)} tokens: the model's context of {room} needs "
                                 f"1 to {room - 1} prompt tokens and room for one new token")
        device = self.model.lm_head.weight.device
        generator = torch.Generator(device=device).manual_seed(sampling.seed)
        return [text for ids in encoded for text in self.sample(ids, sampling, generator, device)]

    def sample(self, prompt_ids: list[int], sampling: Sampling, generator: torch.Generator,
               device: torch.device) -> list[str]:
        eos = self.tokenizer.eos_token_id
        cache = KVCache(len(self.model.layers))
        last = self.model(torch.tensor([prompt_ids], device=device), cache).logits[:, -1]  # (1, vocab)
        cache = cache.repeat_rows(sampling.n)
        logits = last.expand(sampling.n, -1)  # (n, vocab): the prompt's n samples start from the same logits
        generated: list[list[int]] = [[] for _ in range(sampling.n)]
        texts = [""] * sampling.n
        active = list(range(sampling.n))  # the samples still decoding, in cache-row order
        for _ in range(min(sampling.max_tokens, self.model.context_length - len(prompt_ids))):
            next_ids = sample_next_token(logits, sampling.temperature, sampling.top_p, generator)  # (len(active),)
            still = []
            for row, sample in enumerate(active):
                token = int(next_ids[row])
                if token == eos:
                    continue
                generated[sample].append(token)
                texts[sample], stopped = cut_at_stop(self.tokenizer.decode(generated[sample]), sampling.stop)
                if not stopped:
                    still.append(row)
            if not still:
                break
            if len(still) < len(active):
                cache.keep_rows(torch.tensor(still, device=device))
            active = [active[row] for row in still]
            logits = self.model(next_ids[still].unsqueeze(1), cache).logits[:, -1]  # (len(active), vocab)
        return texts
