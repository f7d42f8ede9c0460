"""The embedded end-to-end run (A1 §7): on the prose corpus shipped in fixtures/, train a 10K
BPE tokenizer, tokenize both splits, train a small LM on the CPU, and sample from it.

    embedded-run                                   # about 10 minutes on 2 cores -> runs/embedded-<time>/
    embedded-run --max-steps 60 --out-dir /tmp/e2e # the shortened CI version

Ends with the validation loss next to the validation tokens' unigram entropy (the loss of the
best model that ignores context) and a sample; the loss curves are in lm/loss.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from impl.programs import generate, tokenizer, train
from impl.programs.cli import ArgumentParser, UserError, positive_int, run
from impl.programs.config import TrainConfig, check_config
from impl.programs.files import atomic_write_text

CONFIG = Path(__file__).with_name("configs") / "prose_cpu.toml"
PROMPT = "It is a truth universally acknowledged"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser("embedded-run", __doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, help="default: runs/embedded-<date-time>")
    parser.add_argument("--config", type=Path, default=CONFIG, help="train config")
    parser.add_argument("--max-steps", type=positive_int, help="override the config's max_steps")
    parser.add_argument("--max-minutes", type=float, help="override the config's wall-clock limit (0: none)")
    return run(parser, argv, embedded_run)


def embedded_run(args: argparse.Namespace) -> int:
    out = args.out_dir or Path("runs") / time.strftime("embedded-%Y%m%d-%H%M%S")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out-dir {out} is not an empty directory: choose another")
    tokenizer_dir = out / "tokenizer"
    train_args = ["--config", str(args.config), "--train-data", str(out / "prose_train.npy"),
                  "--valid-data", str(out / "prose_valid.npy"), "--out-dir", str(out / "lm"),
                  *(["--max-steps", str(args.max_steps)] if args.max_steps is not None else []),
                  *(["--max-minutes", str(args.max_minutes)] if args.max_minutes is not None else [])]
    # The train step's settings are checked now, not after the tokenizer work.
    check_config(TrainConfig(**train.given_settings(train.build_parser().parse_args(train_args))))
    steps = [
        ("train-bpe", tokenizer.train_main, ["--out", str(tokenizer_dir)]),
        ("tokenize train", tokenizer.tokenize_main,
         ["--tokenizer", str(tokenizer_dir), "--split", "train", "--out", str(out / "prose_train.npy")]),
        ("tokenize valid", tokenizer.tokenize_main,
         ["--tokenizer", str(tokenizer_dir), "--split", "valid", "--out", str(out / "prose_valid.npy")]),
        ("train", train.main, train_args),
    ]
    for name, program, program_args in steps:
        print(f"== {name}", flush=True)
        if program(program_args) != 0:
            raise UserError(f"the {name} step failed (its error is above); outputs so far are in {out}")
    sample = generate.generate_text(out / "lm" / "checkpoint.pt", PROMPT, max_new_tokens=120)
    atomic_write_text(out / "sample.txt", sample + "\n")
    summary = json.loads((out / "lm" / "summary.json").read_text())
    print(f"== result\nvalidation loss {summary['val_loss']:.3f} nats/token after {summary['step']} steps "
          f"({summary['wall_s']:.0f} s); unigram entropy of the validation tokens {summary['val_unigram_entropy']:.3f}"
          f"\nloss curves: {out / 'lm' / 'loss.png'}\nsample ({out / 'sample.txt'}):\n{sample}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
