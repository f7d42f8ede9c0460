"""The training API's data in the program tests (test_training_api.py, test_isoflop_study.py): the embedded prose
corpus tokenized by train-bpe (PROSE_VOCAB tokens) and tokenize, as train.npy, valid.npy and their .json."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from impl.programs import tokenizer

PROSE_VOCAB = 300


def write_prose_tokens(root: Path) -> Path:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert tokenizer.train_main(["--vocab-size", str(PROSE_VOCAB), "--out", str(root / "tok"),
                                     "--workers", "1"]) == 0
        for split in ("train", "valid"):
            assert tokenizer.tokenize_main(["--tokenizer", str(root / "tok"), "--split", split,
                                            "--out", str(root / f"{split}.npy"), "--workers", "1"]) == 0
    return root
