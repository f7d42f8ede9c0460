"""The tokenizer programs: ``train-bpe`` and ``tokenize`` (A1 §2.5, §2.7).

    train-bpe                                   # 10K vocab on the embedded prose corpus -> runs/tokenizer/
    train-bpe --input data.txt --vocab-size 32000 --out runs/owt-tokenizer
    tokenize --tokenizer runs/tokenizer --out runs/prose_train.npy      # embedded corpus -> uint16 .npy

``tokenize`` writes a standard .npy (``np.load(path, mmap_mode="r")`` memory-maps it) and a
sidecar ``<out>.json`` describing dtype, token count, vocabulary size and the tokenizer
files; both appear only once complete (temp file + rename).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from impl.programs.corpora import EMBEDDED, EOT, embedded_corpus
from impl.programs.run_log import atomic_write_text
from impl.tokenizer.encoding import Tokenizer
from impl.tokenizer.training import chunk_bounds, train_bpe, worker_context

def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished workers (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def train_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train-bpe", description="Train a byte-level BPE tokenizer (A1 §2.5).")
    parser.add_argument("--input", type=Path, help="UTF-8 text file (default: the embedded prose corpus)")
    parser.add_argument("--vocab-size", type=int, default=10_000)
    parser.add_argument("--special-token", action="append", dest="special_tokens", help=f"repeatable (default: {EOT})")
    parser.add_argument("--out", type=Path, default=Path("runs/tokenizer"), help="directory for vocab.json, merges.txt")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    source = args.input or embedded_corpus("train")
    specials = args.special_tokens or [EOT]
    start = time.perf_counter()
    vocab, merges = train_bpe(source, args.vocab_size, specials, num_workers=args.workers, progress=True)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    Tokenizer(vocab, merges, specials).save(args.out / "vocab.json", args.out / "merges.txt")
    (args.out / "special_tokens.json").write_text(json.dumps(specials) + "\n")
    size_mb = source.stat().st_size / 1e6
    longest = max(vocab.values(), key=len)
    print(f"trained {len(vocab)} tokens ({len(merges)} merges) on {source} ({size_mb:.1f} MB) in {seconds:.1f} s "
          f"({size_mb / seconds:.2f} MB/s), peak RSS {peak_rss_mb():.0f} MB; longest token {longest!r}; wrote {args.out}")
    return 0


def load_tokenizer(directory: Path) -> Tokenizer:
    specials_file = directory / "special_tokens.json"
    specials = json.loads(specials_file.read_text()) if specials_file.exists() else [EOT]
    return Tokenizer.from_files(directory / "vocab.json", directory / "merges.txt", specials)


_worker_tokenizer: Tokenizer | None = None


def _init_worker(directory: Path) -> None:
    global _worker_tokenizer
    _worker_tokenizer = load_tokenizer(directory)


def _encode_range(task: tuple[Path, int, int]) -> tuple[int, np.ndarray]:
    path, start, end = task
    with open(path, "rb") as f:
        f.seek(start)
        text = f.read(end - start).decode("utf-8")
    return end - start, np.fromiter(_worker_tokenizer.encode(text), dtype=np.int64)


def tokenize_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tokenize", description="Tokenize a corpus into a uint16 .npy (A1 §2.7).")
    parser.add_argument("--tokenizer", type=Path, required=True, help="directory written by train-bpe")
    parser.add_argument("--input", type=Path, help="UTF-8 text file (default: the embedded prose corpus, --split)")
    parser.add_argument("--split", choices=sorted(EMBEDDED), default="train")
    parser.add_argument("--out", type=Path, required=True, help="output .npy (a sidecar .json is written beside it)")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    source = args.input or embedded_corpus(args.split)
    if not source.is_file():
        parser.error(f"input {source} does not exist")
    tokenizer = load_tokenizer(args.tokenizer)
    if max(tokenizer.vocab) >= 2**16:
        parser.error(f"vocabulary ids reach {max(tokenizer.vocab)}: they do not fit uint16")
    # Cut at special tokens so that every task encodes exactly what encode() of the whole would.
    bounds = chunk_bounds(source, tokenizer.special_tokens, max(1, args.workers) * 8)
    tasks = [(source, a, b) for a, b in zip(bounds, bounds[1:])]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    start, n_tokens = time.perf_counter(), 0
    with tempfile.NamedTemporaryFile(dir=args.out.parent, suffix=".u16", delete=False) as raw, \
            worker_context().Pool(args.workers, _init_worker, (args.tokenizer,)) as pool, \
            tqdm(total=source.stat().st_size, unit="B", unit_scale=True, desc="tokenize") as bar:
        for n_bytes, ids in pool.imap(_encode_range, tasks):  # imap keeps the corpus order
            ids.astype(np.uint16).tofile(raw)
            n_tokens += len(ids)
            bar.update(n_bytes)
    try:
        write_npy(Path(raw.name), n_tokens, args.out)
    finally:
        Path(raw.name).unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    sidecar = {
        "dtype": "uint16", "num_tokens": n_tokens, "vocab_size": len(tokenizer.vocab),
        "special_tokens": {s: tokenizer.special_ids[s] for s in tokenizer.special_tokens},
        "source": str(source), "source_bytes": source.stat().st_size, "tokenizer_dir": str(args.tokenizer.resolve()),
        "tokenizer": {name: hashlib.sha256((args.tokenizer / name).read_bytes()).hexdigest()
                      for name in ("vocab.json", "merges.txt")},
    }
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(sidecar, indent=2) + "\n")
    print(f"{n_tokens:,} tokens from {source.stat().st_size / 1e6:.1f} MB in {seconds:.1f} s "
          f"({source.stat().st_size / 1e6 / seconds:.2f} MB/s, {source.stat().st_size / n_tokens:.2f} bytes/token), "
          f"peak RSS {peak_rss_mb():.0f} MB -> {args.out}")
    return 0


def write_npy(raw: Path, n_tokens: int, out: Path) -> None:
    """Prefix the raw uint16 stream with an .npy header, under a temp name, then rename."""
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".npy", delete=False) as tmp:
        np.lib.format.write_array_header_1_0(tmp, {"descr": "<u2", "fortran_order": False, "shape": (n_tokens,)})
        with open(raw, "rb") as src:
            shutil.copyfileobj(src, tmp)
    os.replace(tmp.name, out)
