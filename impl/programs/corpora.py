"""The corpora the programs read: the embedded prose corpus, and ``fetch-corpus`` for public ones (A1 §7).

    fetch-corpus tinystories            # -> ~/.cache/cs336-kit/tinystories/{train,valid}.txt
    fetch-corpus owt --out data/owt     # the course's OpenWebText sample (gunzipped on the way)

then ``train-bpe --input <dir>/train.txt``, ``tokenize --input ...`` and ``train`` as for the
embedded corpus. Needs internet; nothing else in the kit downloads. Each file is streamed to a
temp name with a progress bar and renamed only when complete.
"""

from __future__ import annotations

import argparse
import gzip
import lzma
import os
import shutil
import sys
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from fixtures import FIXTURES_DIR
from impl.programs.cli import ArgumentParser, UserError, run
from impl.programs.files import atomic_write, remove_stale_temps

EMBEDDED = {name: FIXTURES_DIR / "data" / "corpus" / f"prose_{name}.txt.xz" for name in ("train", "valid")}
CACHE = Path(os.environ.get("CS336_CACHE", Path.home() / ".cache" / "cs336-kit"))
EOT = "<|endoftext|>"


def embedded_corpus(split: str = "train") -> Path:
    """The embedded prose corpus as plain text (decompressed once into the cache dir)."""
    target = CACHE / f"prose_{split}.txt"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with lzma.open(EMBEDDED[split], "rb") as src, atomic_write(target) as file:
            shutil.copyfileobj(src, file)
    return target


HF = "https://huggingface.co/datasets"
CORPORA: dict[str, dict[str, str]] = {
    "tinystories": {"train": f"{HF}/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
                    "valid": f"{HF}/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-valid.txt"},
    "owt": {"train": f"{HF}/stanford-cs336/owt-sample/resolve/main/owt_train.txt.gz",
            "valid": f"{HF}/stanford-cs336/owt-sample/resolve/main/owt_valid.txt.gz"},
}
BLOCK = 1 << 20


def download(url: str, target: Path) -> Path:
    """Stream ``url`` to ``target`` (gunzipping a .gz URL); the target appears only once complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=60) as response, atomic_write(target) as file:
        total = int(response.headers.get("Content-Length") or 0) or None
        inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if url.endswith(".gz") else None
        with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
            while block := response.read(BLOCK):
                file.write(inflate.decompress(block) if inflate else block)
                bar.update(len(block))
        if inflate:
            file.write(inflate.flush())
            if not inflate.eof:
                raise gzip.BadGzipFile(f"{url}: the download ended inside the gzip stream")
        if total is not None and bar.n != total:
            raise OSError(f"{url}: got {bar.n} of {total} bytes")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser("fetch-corpus", "Download a pretraining corpus (needs internet).")
    parser.add_argument("name", choices=sorted(CORPORA), help="the corpus")
    parser.add_argument("--out", type=Path, help="directory for train.txt and valid.txt (default: the kit's cache)")
    return run(parser, argv, fetch)


def fetch(args: argparse.Namespace) -> int:
    out = args.out or CACHE / args.name
    for split, url in CORPORA[args.name].items():
        target = out / f"{split}.txt"
        if target.exists():
            print(f"{target} exists; skipped")
            continue
        remove_stale_temps(target)
        try:
            download(url, target)
        except OSError as error:  # URLError, HTTPError, a short read, a bad gzip stream
            raise UserError(f"could not download {url}: {error}") from None
        print(f"{target}: {target.stat().st_size / 1e6:.1f} MB")
    print(f"next: train-bpe --input {out / 'train.txt'} --out {out / 'tokenizer'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
