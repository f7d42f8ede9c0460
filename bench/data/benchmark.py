"""Web-data filtering throughput (handout A4): an implementation beside ours and the peer, in one process.

    python -m bench.data.benchmark                          # all three tables, on a CPU
    python -m bench.data.benchmark --impl mypkg --only minhash

- MinHash + LSH deduplication, documents/s, from the files in to the survivors written out: ``minhash_deduplication``
  vs the same job built on datasketch (MinHash with the same number of permutations and ``update_batch`` over the same
  normalised word 5-grams, normalised by our fastest code; MinHashLSH with the same bands and rows; candidates
  verified by the same true Jaccard; clusters by union-find; the survivors copied out). The corpus: the prose
  corpus's chapters, plus exact copies of 10% of them and near copies (every 60th word changed, Jaccard ≈ 0.85) of
  another 10%; the rows also count the documents each removed.
- Text extraction, MB/s of HTML: ``extract_text_from_html_bytes`` vs resiliparse's ``extract_plain_text`` on the
  UTF-8-decoded page (the floor: what decoding and detection cost on top), on the fixtures' real pages.
- Language identification, documents/s: ``identify_language`` vs fastText's ``predict`` called directly.
"""

from __future__ import annotations

import argparse
import lzma
import shutil
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

import torch

from bench.common import (ComponentMissing, add_impl_argument, report, tested_implementation, write_report, yours)
from fixtures import FIXTURES_DIR

WEB = FIXTURES_DIR / "data" / "web"
PROSE = FIXTURES_DIR / "data" / "corpus" / "prose_train.txt.xz"


def corpus(chapters: int) -> dict[str, str]:
    """Real chapters, 10% of them copied exactly and 10% nearly (every 60th word changed)."""
    with lzma.open(PROSE, "rt", encoding="utf-8") as f:
        texts = [t.strip() for t in f.read().split("<|endoftext|>") if t.strip()][:chapters]
    docs = {f"chapter{i:05d}.txt": text for i, text in enumerate(texts)}
    for i in range(0, len(texts), 10):
        docs[f"copy{i:05d}.txt"] = texts[i]
        near = texts[(i + 5) % len(texts)].split()
        docs[f"near{i:05d}.txt"] = " ".join(f"w{j}" if j % 60 == 0 else w for j, w in enumerate(near))
    return docs


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def datasketch_dedup(paths: list[Path], num_hashes: int, num_bands: int, ngrams: int, threshold: float,
                     output_directory: Path) -> None:
    """The peer: the same job built from datasketch's MinHash and MinHashLSH, the survivors (the first document of
    each cluster) copied into ``output_directory`` as ``minhash_deduplication`` writes its outputs."""
    from datasketch import MinHash, MinHashLSH

    from impl.data.minhash import clusters, normalized_words

    def jaccard(a: set[bytes], b: set[bytes]) -> float:
        return len(a & b) / len(a | b)

    def shingles(text: str) -> set[bytes]:  # our fastest normalisation: the ratio is MinHash + LSH's alone
        words = normalized_words(text)
        return {b" ".join(words[i:i + ngrams]) for i in range(max(1, len(words) - ngrams + 1))} if words else set()

    sets = [shingles(path.read_text(encoding="utf-8")) for path in paths]
    lsh = MinHashLSH(num_perm=num_hashes, params=(num_bands, num_hashes // num_bands))
    signatures = []
    for i, grams in enumerate(sets):
        signature = MinHash(num_perm=num_hashes, seed=1)
        signature.update_batch(list(grams))
        lsh.insert(i, signature)
        signatures.append(signature)
    pairs = sorted({(min(i, j), max(i, j)) for i, signature in enumerate(signatures) for j in lsh.query(signature)
                    if i != j and jaccard(sets[i], sets[j]) >= threshold})
    removed = {doc for cluster in clusters(pairs) for doc in cluster[1:]}
    for i, path in enumerate(paths):
        if i not in removed:
            shutil.copyfile(path, output_directory / path.name)


def minhash_rows(bundle, args) -> list[list[str]]:
    import impl

    docs = corpus(args.chapters)
    megabytes = sum(len(t.encode()) for t in docs.values()) / 1e6  # in the table's unit
    parameters = (args.num_hashes, args.num_bands, 5, 0.8)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, text in docs.items():
            paths.append(Path(tmp, "in", name))
            paths[-1].parent.mkdir(exist_ok=True)
            paths[-1].write_text(text, encoding="utf-8")

        def removed_by(function) -> Callable[[], int]:
            """A run of ``function`` into a new directory; the documents it did not write."""
            def run() -> int:
                out = Path(tempfile.mkdtemp(dir=tmp))
                function(paths, *parameters, out)
                return len(paths) - len(list(out.iterdir()))
            return run

        contenders = [("datasketch (peer)", removed_by(datasketch_dedup)),
                      ("ours", removed_by(impl.minhash_deduplication))]
        if bundle is not None:
            contenders.append((yours(bundle, "minhash_deduplication"), removed_by(bundle.minhash_deduplication)))
        return ratio_rows(contenders, args.repeat, len(docs), f"docs/s of {megabytes:.1f} MB",
                          detail=lambda removed: f"{removed} removed")


def pages() -> list[bytes]:
    return [path.read_bytes() for path in sorted((WEB / "html").glob("*.html"))]


def extraction_rows(bundle, args) -> list[list[str]]:
    import impl
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    data = pages()
    megabytes = sum(map(len, data)) / 1e6

    def peer():
        for page in data:
            extract_plain_text(bytes_to_str(page, detect_encoding(page)))

    contenders = [("resiliparse alone (peer)", peer),
                  ("ours", lambda: [impl.extract_text_from_html_bytes(page) for page in data])]
    if bundle is not None:
        contenders.append((yours(bundle, "extract_text_from_html_bytes"),
                           lambda: [bundle.extract_text_from_html_bytes(page) for page in data]))
    return ratio_rows(contenders, args.repeat, megabytes, "MB/s")


def language_rows(bundle, args) -> list[list[str]]:
    import impl
    from impl.data.fasttext_model import model_at
    from impl.data.langid import default_language_model

    texts = [path.read_text(encoding="utf-8") for path in sorted((WEB / "langid").glob("*.txt"))]
    texts += list(corpus(200).values())[:200]
    model = model_at(default_language_model()).model

    contenders = [("fastText predict (peer)", lambda: [model.predict(t.replace("\n", " ")) for t in texts]),
                  ("ours", lambda: [impl.identify_language(t) for t in texts])]
    if bundle is not None:
        contenders.append((yours(bundle, "identify_language"), lambda: [bundle.identify_language(t) for t in texts]))
    return ratio_rows(contenders, args.repeat, len(texts), "docs/s")


def ratio_rows(contenders, repeat: int, amount: float, unit: str, detail=lambda result: "") -> list[list[str]]:
    """One row per contender: throughput in ``unit``, the ratio to the first (the peer), and ``detail`` of what the
    contender returned (the same for all when they agree)."""
    rows, peer_time = [], None
    for label, run in contenders:
        try:
            result = run()
            seconds = best_of(repeat, run)
        except ComponentMissing as missing:
            rows.append([label, str(missing), "", ""])
            continue
        peer_time = peer_time or seconds
        rows.append([label, f"{amount / seconds:,.1f} {unit}", f"{peer_time / seconds:.2f}x", detail(result)])
    return rows


TABLES = {"minhash": minhash_rows, "extract": extraction_rows, "language": language_rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=list(TABLES), action="append", help="run only these tables")
    parser.add_argument("--chapters", type=int, default=1228, help="prose chapters in the MinHash corpus (≤ 1228)")
    parser.add_argument("--num-hashes", type=int, default=112)
    parser.add_argument("--num-bands", type=int, default=14)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best is kept")
    parser.add_argument("--out", type=Path, default=Path("reports/data.md"))
    add_impl_argument(parser)
    args = parser.parse_args(argv)
    bundle = tested_implementation(args.impl)
    torch.set_num_threads(1)  # the filters are single-threaded; keep numpy/torch from spreading over the cores
    sections = []
    headers = {"minhash": ["implementation", "throughput", "vs datasketch", "documents"],
               "extract": ["implementation", "throughput", "vs resiliparse alone", ""],
               "language": ["implementation", "throughput", "vs fastText alone", ""]}
    for name in args.only or list(TABLES):
        rows = TABLES[name](bundle, args)
        sections.append(report(f"data: {name}", "python -m bench.data.benchmark", sys.argv[1:] if argv is None else argv,
                               torch.device("cpu"),
                               [f"one process, best of {args.repeat}"], headers[name], rows))
    write_report("\n".join(sections), args.out)


if __name__ == "__main__":
    main()
