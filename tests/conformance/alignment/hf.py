"""What the alignment tests share: a GPT-2 tokenizer built from the vocabulary shipped in fixtures/data/gpt2 and
tiny randomly initialised Llama models built from a config. Nothing is downloaded."""

from __future__ import annotations

from functools import cache

import torch

from fixtures.gpt2 import hf_gpt2_tokenizer

VOCAB_SIZE = 50257  # GPT-2's: the tiny models score every id the tokenizer gives


@cache
def gpt2_tokenizer():
    """GPT-2's byte-level BPE as a transformers fast tokenizer (built once: the tests share it)."""
    return hf_gpt2_tokenizer()


def tiny_llama(seed: int, device="cpu") -> torch.nn.Module:
    """A 2-layer Llama (hidden 32) with seeded random weights, in float32, in eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).to(device).eval()
