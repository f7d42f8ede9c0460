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

CONFIG = Path(__file__).with_name("configs") / "prose_cpu.toml"
PROMPT = "It is a truth universally acknowledged"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="embedded-run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, help="default: runs/embedded-<date-time>")
    parser.add_argument("--config", type=Path, default=CONFIG, help="train config (default: %(default)s)")
    parser.add_argument("--max-steps", type=int, help="override the config's max_steps")
    args = parser.parse_args(argv)
    out = args.out_dir or Path("runs") / time.strftime("embedded-%Y%m%d-%H%M%S")
    if out.exists() and any(out.iterdir()):
        parser.error(f"{out} is not empty: choose another --out-dir")
    tokenizer_dir = out / "tokenizer"
    steps = [
        ("train-bpe", tokenizer.train_main, ["--out", str(tokenizer_dir)]),
        ("tokenize train", tokenizer.tokenize_main,
         ["--tokenizer", str(tokenizer_dir), "--split", "train", "--out", str(out / "prose_train.npy")]),
        ("tokenize valid", tokenizer.tokenize_main,
         ["--tokenizer", str(tokenizer_dir), "--split", "valid", "--out", str(out / "prose_valid.npy")]),
        ("train", train.main,
         ["--config", str(args.config), "--train-data", str(out / "prose_train.npy"),
          "--valid-data", str(out / "prose_valid.npy"), "--out-dir", str(out / "lm"),
          *(["--max-steps", str(args.max_steps)] if args.max_steps else [])]),
    ]
    for name, program, program_args in steps:
        print(f"== {name}", flush=True)
        if program(program_args) != 0:
            print(f"embedded-run: {name} failed; outputs so far are in {out}", file=sys.stderr)
            return 1
    sample = generate.generate_text(out / "lm" / "checkpoint.pt", PROMPT, max_new_tokens=120)
    (out / "sample.txt").write_text(sample + "\n")
    summary = json.loads((out / "lm" / "summary.json").read_text())
    print(f"== result\nvalidation loss {summary['val_loss']:.3f} nats/token after {summary['step']} steps "
          f"({summary['wall_s']:.0f} s); unigram entropy of the validation tokens {summary['val_unigram_entropy']:.3f}"
          f"\nloss curves: {out / 'lm' / 'loss.png'}\nsample ({out / 'sample.txt'}):\n{sample}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
