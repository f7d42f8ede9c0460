"""The tiny training setup of the ``train`` program's tests (test_train_program.py, test_torchrun.py): a tiny
model's arguments and a synthetic corpus, a random first-order Markov chain, so that there is something to learn
within seconds. The corpus files are the ``data`` fixture of tests/programs/conftest.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

VOCAB = 64
TINY = ["--d-model", "32", "--num-layers", "2", "--num-heads", "2", "--d-ff", "64", "--context-length", "32",
        "--batch-size", "8", "--warmup-steps", "5", "--lr-max", "1e-2", "--eval-batches", "2"]


def markov_tokens(n: int, seed: int) -> np.ndarray:
    """Each token drawn from a fixed, peaked distribution over the next ids given the previous one."""
    rng = np.random.default_rng(0)  # the same chain for train and valid
    transition = rng.dirichlet(np.full(VOCAB, 0.1), size=VOCAB)
    cumulative = transition.cumsum(axis=1)
    draws = np.random.default_rng(seed).random(n)
    tokens = np.empty(n, dtype=np.uint16)
    tokens[0] = 0
    for i in range(1, n):
        tokens[i] = min(np.searchsorted(cumulative[tokens[i - 1]], draws[i]), VOCAB - 1)
    return tokens


def write_corpus(root: Path) -> Path:
    """train.npy and valid.npy (uint16 token ids) with their json metadata, in ``root``."""
    for split, n, seed in (("train", 40_000, 1), ("valid", 5_000, 2)):
        np.save(root / f"{split}.npy", markov_tokens(n, seed))
        (root / f"{split}.json").write_text(json.dumps({"dtype": "uint16", "vocab_size": VOCAB}))
    return root


def args(data: Path, out: Path, *more: str) -> list[str]:
    return ["--train-data", str(data / "train.npy"), "--valid-data", str(data / "valid.npy"), "--out-dir", str(out),
            *TINY, *more]


def trajectory(out: Path) -> list[dict]:
    """Every metrics row without its timing fields, which no two runs share."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("wall_s", "tokens_per_s")} for row in rows]
