"""What the alignment tests share: a GPT-2 tokenizer built from the vocabulary shipped in fixtures/data/gpt2 and
tiny randomly initialised Llama models built from a config. Nothing is downloaded."""

from __future__ import annotations

import json
from functools import cache

import torch

from fixtures import FIXTURES_DIR

GPT2_DIR = FIXTURES_DIR / "data" / "gpt2"
EOT = "<|endoftext|>"
VOCAB_SIZE = 50257  # GPT-2's: the tiny models score every id the tokenizer gives


@cache
def gpt2_tokenizer():
    """GPT-2's byte-level BPE as a transformers fast tokenizer; pad = EOS = <|endoftext|> (50256), no BOS added."""
    import tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = json.loads((GPT2_DIR / "vocab.json").read_text("utf-8"))
    lines = (GPT2_DIR / "merges.txt").read_text("utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#")]
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=merges))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOT, pad_token=EOT)


def tiny_llama(seed: int, device="cpu") -> torch.nn.Module:
    """A 2-layer Llama (hidden 32) with seeded random weights, in float32, in eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).to(device).eval()
