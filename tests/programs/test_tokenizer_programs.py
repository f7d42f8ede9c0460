"""The reference's tokenizer programs: train-bpe and tokenize, end to end on a slice of the corpus."""

import json

import numpy as np
import pytest

from impl.programs.corpora import embedded_corpus
from impl.programs.tokenizer import load_tokenizer, tokenize_main, train_main


@pytest.fixture(scope="module")
def corpus_slice(tmp_path_factory):
    text = embedded_corpus("valid").read_text(encoding="utf-8")[:200_000]
    path = tmp_path_factory.mktemp("corpus") / "slice.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.e2e
def test_train_then_tokenize_gives_the_tokenizers_ids(corpus_slice, tmp_path, capsys):
    tokenizer_dir, out = tmp_path / "tok", tmp_path / "ids.npy"
    assert train_main(["--input", str(corpus_slice), "--vocab-size", "600", "--out", str(tokenizer_dir)]) == 0
    assert "trained 600 tokens (343 merges)" in capsys.readouterr().out
    assert tokenize_main(["--tokenizer", str(tokenizer_dir), "--input", str(corpus_slice), "--out", str(out),
                          "--workers", "2"]) == 0
    ids = np.load(out, mmap_mode="r")
    expected = load_tokenizer(tokenizer_dir).encode(corpus_slice.read_text(encoding="utf-8"))
    assert ids.dtype == np.uint16 and ids.tolist() == expected
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["dtype"] == "uint16" and sidecar["num_tokens"] == len(expected) and sidecar["vocab_size"] == 600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.json", "ids.npy", "tok"]  # no temp files left


def test_tokenize_refuses_a_missing_input(tmp_path, capsys):
    assert tokenize_main(["--tokenizer", str(tmp_path), "--input", str(tmp_path / "nope.txt"),
                          "--out", str(tmp_path / "x.npy")]) == 1
    assert "nope.txt does not exist" in capsys.readouterr().err
