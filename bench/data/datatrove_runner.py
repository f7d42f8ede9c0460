"""datatrove running the filters of ``filter-web-data`` on WARC files: the peer of bench/data/pipeline.py.

Runs in datatrove's own virtual environment (``nox -s bench_data_pipeline`` makes it; by hand:
``python3 -m venv V && V/bin/pip install 'datatrove[processing]==0.10.1' warcio faust-cchardet python-magic
resiliparse spacy lxml_html_clean orjson``), started by the benchmark as a subprocess; it imports nothing of the
kit.

    V/bin/python bench/data/datatrove_runner.py A.warc.gz B.warc.gz --out DIR --lid-model lid.176.ftz
        [--extractor resiliparse|trafilatura] [--minhash] [--workers 2]

The pipeline: WarcReader -> extractor -> LanguageFilter (English, score > 0.5, fastText lid.176 from the file
given: offline, where datatrove would download lid.176.bin) -> GopherQualityFilter with the handout's rules only
(word count 50..100,000, mean word length 3..10, at most 30% of lines ending with an ellipsis, at least 80% of
words with a letter; its other rules off) -> JsonlWriter, one task per input file. ``--minhash`` adds datatrove's
4-stage MinHash deduplication (signatures, buckets, clusters, filter) with the given hashes, bands and n-grams.
``--extractor resiliparse`` is resiliparse's ``extract_plain_text`` (what ours calls) in datatrove's extractor step;
trafilatura is datatrove's default. Prints one JSON line: seconds per stage and in all, documents in and kept,
the URLs kept, datatrove's step statistics.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.extractors.base import BaseExtractor
from datatrove.pipeline.filters import GopherQualityFilter, LanguageFilter
from datatrove.pipeline.readers import JsonlReader, WarcReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.lid import FT176LID


class Resiliparse(BaseExtractor):
    """resiliparse's plain-text extraction in datatrove's extractor step (its sandbox and timeout included)."""

    name = "⛏ Resiliparse"
    _requires_dependencies = ("resiliparse",)

    def __init__(self, timeout: float = 1):
        super().__init__(timeout)

    def extract(self, text: str) -> str:
        from resiliparse.extract.html2text import extract_plain_text

        return extract_plain_text(text)


class LocalFT176(FT176LID):
    """datatrove's lid.176 identifier reading the model from a file (it would download lid.176.bin)."""

    def __init__(self, languages: list[str], path: str):
        super().__init__(languages)
        self.path = path

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText

            self._model = _FastText(self.path)
        return self._model


def filters(args) -> list:
    language = LanguageFilter(languages=["en"], language_threshold=0.5)
    language.model = LocalFT176(["en"], args.lid_model)
    extractor = Resiliparse() if args.extractor == "resiliparse" else Trafilatura()
    return [WarcReader(str(args.data), glob_pattern="*.warc.gz"), extractor, language,
            GopherQualityFilter(min_doc_words=50, max_doc_words=100_000, min_avg_word_length=3,
                                max_avg_word_length=10, max_symbol_word_ratio=None, max_bullet_lines_ratio=None,
                                max_ellipsis_lines_ratio=0.3, max_non_alpha_words_ratio=0.8, min_stop_words=None)]


def run(args) -> dict:
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig

    out, tasks = args.out, len(args.inputs)
    seconds = {}

    def stage(name: str, pipeline: list, n_tasks: int) -> None:
        start = time.perf_counter()
        LocalPipelineExecutor(pipeline, tasks=n_tasks, workers=min(args.workers, n_tasks),
                              logging_dir=str(out / "logs" / name)).run()
        seconds[name] = time.perf_counter() - start

    if not args.minhash:
        stage("filter", filters(args) + [JsonlWriter(str(out / "output"))], tasks)
    else:
        config = MinhashConfig(n_grams=args.ngrams, num_buckets=args.num_bands,
                               hashes_per_bucket=args.num_hashes // args.num_bands)
        stage("filter", filters(args) + [JsonlWriter(str(out / "filtered")),
                                         MinhashDedupSignature(str(out / "signatures"), config=config)], tasks)
        stage("buckets", [MinhashDedupBuckets(str(out / "signatures"), str(out / "buckets"), config=config)],
              args.num_bands)
        stage("cluster", [MinhashDedupCluster(str(out / "buckets"), str(out / "remove_ids"), config=config)], 1)
        stage("dedup", [JsonlReader(str(out / "filtered")), MinhashDedupFilter(str(out / "remove_ids")),
                        JsonlWriter(str(out / "output"))], tasks)
    kept = []
    for path in sorted((out / "output").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as file:
            kept += [json.loads(line)["metadata"]["url"] for line in file]
    stats = json.loads((out / "logs" / "filter" / "stats.json").read_text(encoding="utf-8"))
    return {"seconds": seconds, "kept": len(kept), "kept_urls": sorted(kept), "stats": stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="WARC files (.warc.gz)")
    parser.add_argument("--out", type=Path, required=True, help="an empty or new folder")
    parser.add_argument("--lid-model", required=True, help="fastText lid.176 (.bin or .ftz)")
    parser.add_argument("--extractor", choices=("resiliparse", "trafilatura"), default="resiliparse")
    parser.add_argument("--minhash", action="store_true")
    parser.add_argument("--num-hashes", type=int, default=128)
    parser.add_argument("--num-bands", type=int, default=16)
    parser.add_argument("--ngrams", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    args.data = args.out / "inputs"  # datatrove reads a folder: the inputs linked into one
    args.data.mkdir(parents=True)
    for i, path in enumerate(args.inputs):
        os.symlink(path.resolve(), args.data / f"{i:05d}.{path.name.removesuffix('.warc.gz')}.warc.gz")
    start = time.perf_counter()
    result = run(args)
    result["total_seconds"] = time.perf_counter() - start
    print(json.dumps(result), file=sys.stdout)


if __name__ == "__main__":
    main()
