"""The ``generate`` program: sample text from a checkpoint of the ``train`` program (A1 §6).

    generate --run runs/lm --prompt "It is a truth universally acknowledged" --temperature 0.8 --top-p 0.9

The checkpoint carries the model's config and the tokenizer directory it was trained with;
``--tokenizer`` overrides the latter when the run has moved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from impl.decode import decode
from impl.nn import TransformerLM
from impl.programs.corpora import EOT
from impl.programs.tokenizer import load_tokenizer
from impl.train import read_checkpoint
from impl.programs.config import TrainConfig, build_model


def load_model(checkpoint_path: Path, device: str) -> tuple[TransformerLM, TrainConfig]:
    checkpoint = read_checkpoint(checkpoint_path)
    if "config" not in checkpoint:
        raise ValueError(f"{checkpoint_path} has no config: it was not written by the train program")
    # The kernels change speed, not the function or the state dict: sampling uses the reference path anywhere.
    cfg = TrainConfig(**{**checkpoint["config"], "device": device, "kernels": "none"})
    model = build_model(cfg)
    model.load_state_dict(checkpoint["model"])
    return model, cfg


def generate_text(checkpoint: Path, prompt: str, max_new_tokens: int = 256, temperature: float = 0.8,
                  top_p: float = 0.9, seed: int = 0, device: str = "cpu", tokenizer_dir: Path | None = None) -> str:
    """The prompt and its sampled continuation, decoded; stops early at <|endoftext|>."""
    model, cfg = load_model(checkpoint, device)
    tokenizer_dir = tokenizer_dir or Path(cfg.tokenizer_dir)
    if not (tokenizer_dir / "vocab.json").is_file():
        raise ValueError(f"tokenizer {tokenizer_dir} not found: pass --tokenizer")
    tokenizer = load_tokenizer(tokenizer_dir)
    prompt_ids = tokenizer.encode(prompt or EOT)
    if len(prompt_ids) > cfg.context_length:
        raise ValueError(f"the prompt is {len(prompt_ids)} tokens, longer than the model's "
                         f"context_length={cfg.context_length}")
    generator = torch.Generator(device).manual_seed(seed)
    ids = decode(model, torch.tensor(prompt_ids, device=device), max_new_tokens, temperature, top_p,
                 end_of_text_id=tokenizer.special_ids.get(EOT), generator=generator)
    return prompt + tokenizer.decode(ids.tolist())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="generate", description="Sample a completion from a trained LM (A1 §6).")
    parser.add_argument("--run", type=Path, default=Path("runs/lm"), help="out_dir of a train run")
    parser.add_argument("--checkpoint", type=Path, help="default: <run>/checkpoint.pt")
    parser.add_argument("--tokenizer", type=Path, help="default: the tokenizer the run was trained with")
    parser.add_argument("--prompt", default="", help=f"text to continue (default: {EOT}, a fresh document)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    checkpoint = args.checkpoint or args.run / "checkpoint.pt"
    if not checkpoint.is_file():
        parser.error(f"checkpoint {checkpoint} does not exist")
    try:
        text = generate_text(checkpoint, args.prompt, args.max_new_tokens, args.temperature, args.top_p, args.seed,
                             args.device, args.tokenizer)
    except ValueError as error:
        print(f"generate: error: {error}", file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
