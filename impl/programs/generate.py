"""The ``generate`` program: sample text from a checkpoint of the ``train`` program (A1 §6).

    generate --run runs/lm --prompt "It is a truth universally acknowledged" --temperature 0.8 --top-p 0.9

The checkpoint carries the model's config and the tokenizer directory it was trained with;
``--tokenizer`` overrides the latter when the run has moved. A tokenizer other than the one the
training data were made with is refused (the checkpoint keeps its files' hashes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from impl.programs.checkpoints import load_run_checkpoint
from impl.programs.cli import ArgumentParser, UserError, gist, run
from impl.programs.config import TrainConfig, build_model, resolve_device
from impl.programs.corpora import EOT
from impl.programs.tokenizer import load_tokenizer, tokenizer_sha256


def generate_text(checkpoint_path: Path, prompt: str, max_new_tokens: int = 256, temperature: float = 0.8,
                  top_p: float = 0.9, seed: int = 0, device: str = "cpu", tokenizer_dir: Path | None = None) -> str:
    """The prompt and its sampled continuation, decoded; stops early at <|endoftext|>."""
    import torch

    from impl.decode import decode

    device = resolve_device(device)
    checkpoint = load_run_checkpoint(checkpoint_path)
    # The kernels change speed, not the function or the state dict: sampling uses the reference path anywhere.
    cfg = TrainConfig(**{**checkpoint["config"], "device": device, "kernels": "none"})
    tokenizer_dir = tokenizer_dir or Path(cfg.tokenizer_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    trained_with = checkpoint["tokenizer_sha256"]
    if len(tokenizer.vocab) != cfg.vocab_size or (trained_with and tokenizer_sha256(tokenizer_dir) != trained_with):
        raise UserError(f"tokenizer {tokenizer_dir} ({len(tokenizer.vocab)} tokens) is not the one {checkpoint_path} "
                        f"was trained with ({cfg.vocab_size} tokens, tokenizer_dir {cfg.tokenizer_dir}): pass that "
                        f"one with --tokenizer")
    model = build_model(cfg)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise UserError(f"{checkpoint_path}: its weights do not fit the model its config describes: "
                        f"{gist(error)}") from None
    prompt_ids = tokenizer.encode(prompt or EOT)
    if len(prompt_ids) > cfg.context_length:
        raise UserError(f"the prompt is {len(prompt_ids)} tokens, longer than the model's "
                        f"context_length={cfg.context_length}")
    generator = torch.Generator(device).manual_seed(seed)
    ids = decode(model, torch.tensor(prompt_ids, device=device), max_new_tokens, temperature, top_p,
                 end_of_text_id=tokenizer.special_ids.get(EOT), generator=generator)
    return prompt + tokenizer.decode(ids.tolist())


def probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], got {value}")
    return value


def non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser("generate", "Sample a completion from a trained LM (A1 §6).")
    parser.add_argument("--run", type=Path, default=Path("runs/lm"), help="out_dir of a train run")
    parser.add_argument("--checkpoint", type=Path, help="default: <run>/checkpoint.pt")
    parser.add_argument("--tokenizer", type=Path, help="default: the tokenizer the run was trained with")
    parser.add_argument("--prompt", default="", help=f"text to continue ('': {EOT}, a fresh document)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="tokens to sample at most")
    parser.add_argument("--temperature", type=non_negative, default=0.8, help="0: greedy")
    parser.add_argument("--top-p", type=probability, default=0.9, help="nucleus sampling's probability mass")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (auto: cuda when available)")

    def sample(args: argparse.Namespace) -> int:
        if args.max_new_tokens < 0:
            raise UserError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
        print(generate_text(args.checkpoint or args.run / "checkpoint.pt", args.prompt, args.max_new_tokens,
                            args.temperature, args.top_p, args.seed, args.device, args.tokenizer))
        return 0

    return run(parser, argv, sample)


if __name__ == "__main__":
    sys.exit(main())
