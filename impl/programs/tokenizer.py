"""The tokenizer programs: ``train-bpe`` and ``tokenize`` (A1 §2.5, §2.7).

    train-bpe                                   # 10K vocab on the embedded prose corpus -> runs/tokenizer/
    train-bpe --input data.txt --vocab-size 32000 --out runs/owt-tokenizer
    tokenize --tokenizer runs/tokenizer --out runs/prose_train.npy      # embedded corpus -> uint16 .npy

``tokenize`` writes a standard .npy (``np.load(path, mmap_mode="r")`` memory-maps it) and a
sidecar ``<out>.json`` describing dtype, token count, vocabulary size and the tokenizer
files. Every output appears only once complete (impl/programs/files.py).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from impl.programs.cli import ArgumentParser, UserError, positive_int, run
from impl.programs.corpora import EMBEDDED, EOT, embedded_corpus
from impl.programs.files import atomic_write, atomic_write_text, remove_stale_temps
from impl.tokenizer.encoding import Tokenizer, gpt2_files_text
from impl.tokenizer.training import NotUtf8Error, chunk_bounds, not_utf8, train_bpe, worker_context


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished workers (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


TOKENIZER_FILES = ("vocab.json", "merges.txt", "special_tokens.json")


def train_main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser("train-bpe", "Train a byte-level BPE tokenizer (A1 §2.5).")
    parser.add_argument("--input", type=Path, help="UTF-8 text file (default: the embedded prose corpus)")
    parser.add_argument("--vocab-size", type=positive_int, default=10_000, help="tokens: specials + 256 bytes + merges")
    parser.add_argument("--special-token", action="append", dest="special_tokens",
                        help=f"a special token, never split or merged; repeatable (default: {EOT})")
    parser.add_argument("--out", type=Path, default=Path("runs/tokenizer"),
                        help="directory for vocab.json, merges.txt and special_tokens.json")
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count(), help="processes counting pre-tokens")
    return run(parser, argv, train_tokenizer)


def train_tokenizer(args: argparse.Namespace) -> int:
    source = args.input or embedded_corpus("train")
    check_input(source, "--input")
    check_output(args.out, directory=True)
    specials = args.special_tokens or [EOT]
    start = time.perf_counter()
    try:  # train_bpe checks its arguments before it reads the file
        vocab, merges = train_bpe(source, args.vocab_size, specials, num_workers=args.workers, progress=True)
    except ValueError as error:  # a vocabulary too small, an empty special token, input that is not UTF-8
        raise UserError(str(error)) from None
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        remove_stale_temps(args.out / name)
    vocab_text, merges_text = gpt2_files_text(vocab, merges)
    atomic_write_text(args.out / "vocab.json", vocab_text)
    atomic_write_text(args.out / "merges.txt", merges_text)
    atomic_write_text(args.out / "special_tokens.json", json.dumps(specials) + "\n")
    size_mb = source.stat().st_size / 1e6
    longest = max(vocab.values(), key=len)
    print(f"trained {len(vocab)} tokens ({len(merges)} merges) on {source} ({size_mb:.1f} MB) in {seconds:.1f} s "
          f"({size_mb / seconds:.2f} MB/s), peak RSS {peak_rss_mb():.0f} MB; longest token {longest!r}; wrote {args.out}")
    return 0


def check_input(path: Path, flag: str) -> None:
    """A non-empty regular file, before any work."""
    if not path.exists():
        raise UserError(f"{flag} {path} does not exist")
    if not path.is_file():
        raise UserError(f"{flag} {path} is not a file")
    if path.stat().st_size == 0:
        raise UserError(f"{flag} {path} is empty: there is nothing to read")


def check_output(path: Path, directory: bool) -> None:
    """``path`` can be written (as a directory or a file) once the work is done: checked before the work."""
    if directory and path.exists() and not path.is_dir():
        raise UserError(f"--out {path} exists and is not a directory")
    if not directory and path.is_dir():
        raise UserError(f"--out {path} is a directory; give a file name such as {path / 'tokens.npy'}")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if existing != path and not existing.is_dir():
        raise UserError(f"--out {path}: {existing} is a file, not a directory")
    if not os.access(existing if existing.is_dir() else existing.parent, os.W_OK):
        raise UserError(f"--out {path}: no permission to write in {existing if existing.is_dir() else existing.parent}")


def load_tokenizer(directory: Path) -> Tokenizer:
    """A directory written by train-bpe; a missing or unreadable one is a UserError naming it."""
    missing = [name for name in TOKENIZER_FILES[:2] if not (directory / name).is_file()]
    if missing:
        raise UserError(f"tokenizer {directory}: no {' or '.join(missing)} (a directory written by train-bpe)")
    specials_file = directory / "special_tokens.json"
    try:
        specials = json.loads(specials_file.read_text(encoding="utf-8")) if specials_file.exists() else [EOT]
        return Tokenizer.from_files(directory / "vocab.json", directory / "merges.txt", specials)
    except (ValueError, TypeError, AttributeError) as error:  # JSON, UTF-8 or format errors of the three files
        raise UserError(f"tokenizer {directory} is not readable as train-bpe writes it: {error}") from None


def tokenizer_sha256(directory: Path) -> dict[str, str]:
    """The hashes that tie token arrays and checkpoints to the tokenizer they were made with."""
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in TOKENIZER_FILES[:2]}


_worker_tokenizer: Tokenizer | None = None


def _init_worker(directory: Path) -> None:
    global _worker_tokenizer
    _worker_tokenizer = load_tokenizer(directory)


def _encode_range(task: tuple[Path, int, int]) -> tuple[int, np.ndarray]:
    path, start, end = task
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise not_utf8(path, start, error) from None
    return end - start, np.fromiter(_worker_tokenizer.encode(text), dtype=np.int64)


def tokenize_main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser("tokenize", "Tokenize a corpus into a uint16 .npy (A1 §2.7).")
    parser.add_argument("--tokenizer", type=Path, required=True, help="directory written by train-bpe")
    parser.add_argument("--input", type=Path, help="UTF-8 text file (default: the embedded prose corpus, --split)")
    parser.add_argument("--split", choices=sorted(EMBEDDED), default="train", help="split of the embedded corpus")
    parser.add_argument("--out", type=Path, required=True, help="output .npy (a sidecar .json is written beside it)")
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count(), help="encoding processes")
    return run(parser, argv, tokenize)


def tokenize(args: argparse.Namespace) -> int:
    source = args.input or embedded_corpus(args.split)
    check_input(source, "--input")
    check_output(args.out, directory=False)
    tokenizer = load_tokenizer(args.tokenizer)
    if max(tokenizer.vocab) >= 2**16:
        raise UserError(f"tokenizer {args.tokenizer}: ids reach {max(tokenizer.vocab)}, which do not fit uint16")
    sidecar_path = args.out.with_suffix(".json")
    # Cut at special tokens so that every task encodes exactly what encode() of the whole would.
    bounds = chunk_bounds(source, tokenizer.special_tokens, max(1, args.workers) * 8)
    tasks = [(source, a, b) for a, b in zip(bounds, bounds[1:])]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for path in (args.out, sidecar_path):
        remove_stale_temps(path)
    start, n_tokens = time.perf_counter(), 0
    try:
        with atomic_write(args.out) as out, worker_context().Pool(args.workers, _init_worker, (args.tokenizer,)) as pool, \
                tqdm(total=source.stat().st_size, unit="B", unit_scale=True, desc="tokenize") as bar:
            out.write(npy_header(0))  # the count is known at the end; the header's length does not depend on it
            for n_bytes, ids in pool.imap(_encode_range, tasks):  # imap keeps the corpus order
                ids.astype(np.uint16).tofile(out)
                n_tokens += len(ids)
                bar.update(n_bytes)
            out.seek(0)
            out.write(npy_header(n_tokens))
    except NotUtf8Error as error:
        raise UserError(str(error)) from None
    seconds = time.perf_counter() - start
    atomic_write_text(sidecar_path, token_sidecar(n_tokens, tokenizer, args.tokenizer, str(source),
                                                  source.stat().st_size))
    size_mb = source.stat().st_size / 1e6
    print(f"{n_tokens:,} tokens from {size_mb:.1f} MB in {seconds:.1f} s ({size_mb / seconds:.2f} MB/s, "
          f"{source.stat().st_size / max(n_tokens, 1):.2f} bytes/token), peak RSS {peak_rss_mb():.0f} MB -> {args.out}")
    return 0


def token_sidecar(n_tokens: int, tokenizer: Tokenizer, tokenizer_dir: Path, source: str, source_bytes: int) -> str:
    """The JSON beside a token array: what `train` reads (vocab_size, tokenizer_dir) and the tokenizer's hashes."""
    sidecar = {
        "dtype": "uint16", "num_tokens": n_tokens, "vocab_size": len(tokenizer.vocab),
        "special_tokens": {s: tokenizer.special_ids[s] for s in tokenizer.special_tokens},
        "source": source, "source_bytes": source_bytes, "tokenizer_dir": str(tokenizer_dir.resolve()),
        "tokenizer": tokenizer_sha256(tokenizer_dir),
    }
    return json.dumps(sidecar, indent=2) + "\n"


def npy_header(n_tokens: int) -> bytes:
    """The .npy header of a 1-D uint16 array; numpy pads it to a multiple of 64 bytes, so that it is 128 bytes for
    any count below 10^20: the placeholder written first is overwritten in place."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<u2", "fortran_order": False, "shape": (n_tokens,)})
    assert len(header.getvalue()) == 128, "the .npy header length changed: the placeholder would not fit"
    return header.getvalue()
