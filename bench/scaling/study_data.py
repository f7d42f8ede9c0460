"""The IsoFLOP study's text (bench/scaling/isoflop_study_gpu.sh, stage ``data``): a corpus of documents joined by
``<|endoftext|>`` split into training and validation text of the same kind, in an order where any prefix is a
sample of the whole.

    python -m bench.scaling.study_data CORPUS.txt OUT_DIR      # writes OUT_DIR/train.txt and OUT_DIR/valid.txt

Every ``--held-out-every``-th document is validation text, the rest training text. Documents are cut at line ends
into pieces of about ``--piece-chars`` characters, and each split's pieces are shuffled (seeded). Why pieces: the
training API reads the training tokens in a fixed order, consecutively, and evaluates on the first 2^18 validation
tokens. Whole documents in that order put a large file's tokens into hundreds of consecutive steps: in the Linux
text, 41% of the bytes are in files larger than 1 MB (generated register headers, up to 24 MB), and the H200 sweeps
on whole shuffled files had validation losses jumping by up to 4 nats mid-run while a run trained on one of them.
"""

from __future__ import annotations

import random
from pathlib import Path

from impl.programs.cli import ArgumentParser, positive_int, run
from impl.programs.corpora import EOT
from impl.programs.files import atomic_write_text


def pieces(document: str, piece_chars: int) -> list[str]:
    """``document`` cut after the first line end at or past every ``piece_chars`` characters: the pieces joined give
    it back; a line longer than that stays whole."""
    out, start = [], 0
    while start < len(document):
        end = document.find("\n", start + piece_chars - 1)
        end = len(document) if end < 0 else end + 1
        out.append(document[start:end])
        start = end
    return out


def study_splits(corpus: str, held_out_every: int, piece_chars: int, seed: int) -> tuple[list[str], list[str]]:
    """(training pieces, validation pieces), each shuffled; the validation pieces come from every
    ``held_out_every``-th document only, so that no document is in both."""
    documents = corpus.split(EOT)
    valid = [p for d in documents[::held_out_every] for p in pieces(d, piece_chars)]
    train = [p for i, d in enumerate(documents) if i % held_out_every for p in pieces(d, piece_chars)]
    rng = random.Random(seed)
    rng.shuffle(train)
    rng.shuffle(valid)
    return train, valid


def build_parser() -> ArgumentParser:
    parser = ArgumentParser("study-data", "Split a corpus into the IsoFLOP study's shuffled training and validation "
                                          "text.")
    parser.add_argument("corpus", type=Path, help="UTF-8 text, documents joined by <|endoftext|>")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--held-out-every", type=positive_int, default=100)
    parser.add_argument("--piece-chars", type=positive_int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def split_corpus(args) -> int:
    train, valid = study_splits(args.corpus.read_text(encoding="utf-8"), args.held_out_every, args.piece_chars,
                                args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out_dir / "train.txt", EOT.join(train))
    atomic_write_text(args.out_dir / "valid.txt", EOT.join(valid))
    print(f"{len(train):,} training and {len(valid):,} validation pieces of about {args.piece_chars} characters "
          f"-> {args.out_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv, split_corpus)


if __name__ == "__main__":
    raise SystemExit(main())
