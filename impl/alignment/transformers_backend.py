"""Rollouts with Hugging Face ``generate``: any causal LM transformers loads (SmolLM2, Qwen2.5-Math-1.5B, ...). The
fallback where vLLM is absent, e.g. on the GPU machines' image."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from impl.alignment.generation import Sampling, cut_at_stop


class TransformersBackend:
    """Samples with its own copy of ``model`` (so that ``load_weights`` is the only way the policy's updates reach
    it, as with vLLM). One ``generate`` call samples up to ``sequences_per_batch`` sequences: that many prompts,
    left-padded, or that many divided by ``n`` when each is sampled ``n`` times. A small model's decode step costs
    about the same for 64 sequences as for 512 (it is bound by kernel launches), so the larger the batch, the faster.

    ``dtype`` casts the copy (bfloat16 rollouts from a float32 policy, as vLLM samples); ``static_cache`` has
    ``generate`` keep keys and values in a fixed-size cache, which on a GPU it compiles with CUDA graphs: a decode
    step of a small model is otherwise bound by kernel launches and Python, not by arithmetic."""

    def __init__(self, model: torch.nn.Module, tokenizer, sequences_per_batch: int = 512,
                 dtype: torch.dtype | None = None, static_cache: bool = False):
        self.model = copy.deepcopy(model).to(dtype=dtype).eval()
        self.static_cache = static_cache
        self.tokenizer = tokenizer
        self.context_length = model.config.max_position_embeddings
        self.sequences_per_batch = sequences_per_batch
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def load_weights(self, state_dict: Mapping[str, Tensor]) -> None:
        # strict=False: a tied model's state dict may carry lm_head.weight, which is the embedding here; every key
        # it has must still be the model's.
        unexpected = self.model.load_state_dict(state_dict, strict=False).unexpected_keys
        if unexpected:
            raise ValueError(f"weights the model does not have: {unexpected[:5]}")

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], sampling: Sampling) -> list[str]:
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        for i, ids in enumerate(encoded):
            if not ids or len(ids) >= self.context_length:
                raise ValueError(f"prompt {i} has {len(ids)} tokens: the model's context of {self.context_length} "
                                 f"needs 1 to {self.context_length - 1} prompt tokens and room for one new token")
        device = next(self.model.parameters()).device
        # generate draws from the global generator: seeded inside fork_rng, the caller's random state is untouched.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(sampling.seed)
            per_call = max(1, self.sequences_per_batch // (1 if sampling.temperature == 0 else sampling.n))
            texts = []
            for start in range(0, len(encoded), per_call):
                batch = encoded[start:start + per_call]
                # generate compiles the static cache's decoding once per batch size: when a call spans several
                # batches, the last is padded to the others' size with copies of its last prompt, whose
                # completions are dropped (the 1319 GSM8K problems ran as 512, 512 and 295: two compilations).
                copies = per_call - len(batch) if self.static_cache and len(encoded) > per_call else 0
                completions = self.sample(batch + [batch[-1]] * copies, sampling, device)
                texts += completions[:len(batch) * sampling.n]
            return texts

    def sample(self, prompts: list[list[int]], sampling: Sampling, device: torch.device) -> list[str]:
        """Each prompt's n completions, prompt after prompt."""
        greedy = sampling.temperature == 0
        settings = {"do_sample": False} if greedy else {
            # top_k 0: no top-k cut (the model's generation config may carry one; vLLM's default has none).
            "do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0,
            "num_return_sequences": sampling.n}
        width = max(len(ids) for ids in prompts)
        # Left padding: every prompt ends at the same column, where generation starts.
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        room = self.context_length - width
        out = self.model.generate(ids, attention_mask=mask, max_new_tokens=min(sampling.max_tokens, room),
                                  stop_strings=list(sampling.stop) or None, tokenizer=self.tokenizer,
                                  pad_token_id=self.pad_id,
                                  cache_implementation="static" if self.static_cache else None, **settings)
        texts = []
        for row in out[:, width:].tolist():
            if self.tokenizer.eos_token_id in row:  # the end-of-text token and the padding after it are dropped
                row = row[:row.index(self.tokenizer.eos_token_id)]
            texts.append(cut_at_stop(self.tokenizer.decode(row, skip_special_tokens=True), sampling.stop)[0])
        if greedy:  # greedy decoding gives the same text n times
            texts = [text for text in texts for _ in range(sampling.n)]
        return texts
