"""The whole web-data pipeline: ``filter-web-data`` vs datatrove with the same filters on the same WARC files.

    nox -s bench_data_pipeline                                        # makes datatrove's venv, runs this
    python -m bench.data.pipeline --datatrove-python V/bin/python     # V: a venv with datatrove (below)

Documents/s and MB/s of HTML, each side as a subprocess with the same number of workers, wall time from start to
the last output (imports, model loading and every stage included), best of ``--repeat``. Two tables:

- filter: extract (resiliparse) -> English (fastText lid.176, score 0.5) -> Gopher (the handout's four rules) ->
  JSONL. datatrove: WarcReader -> extractor -> LanguageFilter -> GopherQualityFilter -> JsonlWriter, with
  resiliparse in its extractor step (the strongest peer configuration) and with its default, Trafilatura.
- filter + minhash: the same, then MinHash deduplication with the same hashes, bands and word 5-grams; datatrove's
  4 stages (signatures, buckets, clusters, filter).

Ours also writes what datatrove does not: the uint16 token array (GPT-2 BPE of every kept document), the count
summary, resumable stage markers; its time includes them. Below each table, the documents each kept and where
they disagree. The input is the benchmark crawl (bench/data/crawl.py: 6,001 Debian documentation pages, built
once), or ``--inputs``. datatrove runs from its own environment, by bench/data/datatrove_runner.py:

    python3 -m venv V && V/bin/pip install 'datatrove[processing]==0.10.1' warcio faust-cchardet python-magic \\
        resiliparse spacy lxml_html_clean orjson
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.common import report, write_report

RUNNER = Path(__file__).with_name("datatrove_runner.py")
SETUP = ("nox -s bench_data_pipeline, or: python3 -m venv V && V/bin/pip install 'datatrove[processing]==0.10.1' "
         "warcio faust-cchardet python-magic resiliparse spacy lxml_html_clean orjson; "
         "then --datatrove-python V/bin/python")
FILTERS = """
[[filters]]
name = "extract"
[[filters]]
name = "language"
languages = ["en"]
min_score = 0.5
[[filters]]
name = "gopher"
"""
MINHASH = """
[[filters]]
name = "minhash"
num_hashes = {num_hashes}
num_bands = {num_bands}
ngrams = 5
threshold = 0.8
"""


def html_input(paths: list[Path]) -> tuple[int, int]:
    """(documents, bytes of their payloads): the response records of the files."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    documents = payload = 0
    for path in paths:
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=True):
                documents += 1
                payload += len(record.reader.read())
    return documents, payload


def datatrove_problem(python: str | None) -> str | None:
    """Why datatrove cannot run from ``python`` (None: it can)."""
    if not python:
        return f"datatrove not run: no --datatrove-python (set it up: {SETUP})"
    if not Path(python).is_file():
        return f"datatrove not run: --datatrove-python {python} does not exist (set it up: {SETUP})"
    imports = "import datatrove, resiliparse, warcio, spacy, magic, cchardet, trafilatura, orjson"
    done = subprocess.run([python, "-c", imports], capture_output=True, text=True, check=False)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"datatrove not run: {python} cannot import it ({last}; set it up: {SETUP})"
    return None


def datatrove_version(python: str) -> str:
    code = "import importlib.metadata as m; print(m.version('datatrove'))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=False).stdout.strip()


def run_ours(inputs: list[Path], config: str, workdir: Path, workers: int) -> dict:
    out = Path(tempfile.mkdtemp(dir=workdir, prefix="ours-"))
    (out / "config.toml").write_text(config, encoding="utf-8")
    command = [sys.executable, "-m", "impl.programs.filter_web_data", *map(str, inputs), "--config",
               str(out / "config.toml"), "--out", str(out / "run"), "--workers", str(workers)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"},
                          check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"filter-web-data failed:\n{done.stderr[-3000:]}")
    summary = json.loads((out / "run" / "summary.json").read_text(encoding="utf-8"))
    urls = [json.loads(line)["url"] for path in sorted((out / "run" / "documents").glob("*.jsonl"))
            for line in path.open(encoding="utf-8")]
    return {"seconds": seconds, "kept_urls": urls, "summary": summary}


def run_datatrove(python: str, inputs: list[Path], extractor: str, minhash: bool, workdir: Path, args) -> dict:
    from impl.data.langid import default_language_model

    out = Path(tempfile.mkdtemp(dir=workdir, prefix=f"datatrove-{extractor}-"))
    command = [python, str(RUNNER), *map(str, inputs), "--out", str(out / "run"), "--lid-model",
               str(default_language_model()), "--extractor", extractor, "--workers", str(args.workers),
               "--num-hashes", str(args.num_hashes), "--num-bands", str(args.num_bands)]
    start = time.perf_counter()
    done = subprocess.run(command + (["--minhash"] if minhash else []), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"datatrove failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "seconds": seconds}


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def agreement(name: str, ours: list[str], theirs: list[str]) -> str:
    a, b = set(ours), set(theirs)
    return (f"{name}: ours kept {len(ours)}, datatrove {len(theirs)}; both {len(a & b)}, only ours {len(a - b)}, "
            f"only datatrove {len(b - a)}")


def table(name: str, minhash: bool, inputs: list[Path], documents: int, payload: int, workdir: Path, args,
          problem: str | None) -> tuple[list[list[str]], list[str]]:
    config = FILTERS + (MINHASH.format(num_hashes=args.num_hashes, num_bands=args.num_bands) if minhash else "")
    contenders = [("datatrove, resiliparse extractor (peer)", "resiliparse")]
    if args.trafilatura and not minhash:
        contenders.append(("datatrove, Trafilatura extractor (its default)", "trafilatura"))
    rows, notes, results, peer_seconds = [], [], {}, None
    for label, extractor in contenders:
        if problem:
            rows.append([label, problem, "", "", ""])
            continue
        runs = [run_datatrove(args.datatrove_python, inputs, extractor, minhash, workdir, args)
                for _ in range(args.repeat)]
        results[extractor] = result = best(runs)
        peer_seconds = peer_seconds or result["seconds"]
        rows.append(throughput_row(label, result["seconds"], documents, payload, peer_seconds, result["kept"],
                                   runs))
    runs = [run_ours(inputs, config, workdir, args.workers) for _ in range(args.repeat)]
    ours = best(runs)
    rows.append(throughput_row("ours (filter-web-data)", ours["seconds"], documents, payload, peer_seconds,
                               len(ours["kept_urls"]), runs))
    dropped = ", ".join(f"{reason} {n}" for reason, n in ours["summary"]["dropped"].items())
    failed = ", ".join(f"{reason} {n}" for reason, n in ours["summary"]["failed"].items()) or "none"
    notes.append(f"{name}: ours dropped {dropped}; failed {failed}; {ours['summary']['tokens']:,} tokens written")
    for extractor, result in results.items():
        notes.append(f"{name}: datatrove ({extractor}) dropped {datatrove_drops(result['stats'])}")
        notes.append(agreement(f"{name} vs datatrove ({extractor})", ours["kept_urls"], result["kept_urls"]))
        if extractor == "resiliparse" and args.show_differences:
            only = sorted(set(ours["kept_urls"]) ^ set(result["kept_urls"]))
            notes.append(f"{name}: first differences: {', '.join(only[:args.show_differences])}")
    return rows, notes


def datatrove_drops(stats: list[dict]) -> str:
    """What each of datatrove's filter steps dropped (its stats.json), as "step reason n"."""
    found = []
    for step in stats:
        step_name = step["name"].split(": ")[-1].encode("ascii", "ignore").decode().strip()
        found += [f"{step_name} {key} {n}" for key, n in step["stats"].items() if key.startswith("dropped")
                  and not (key == "dropped" and any(k.startswith("dropped_") for k in step["stats"]))]
        for key in ("timeout", "clean_error", "broken_process"):
            if step["stats"].get(key):
                found.append(f"{step_name} {key} {step['stats'][key]}")
    return ", ".join(found) or "nothing"


def throughput_row(label: str, seconds: float, documents: int, payload: int, peer_seconds: float | None, kept: int,
                   runs: list[dict]) -> list[str]:
    ratio = f"{peer_seconds / seconds:.2f}x" if peer_seconds else ""
    times = ", ".join(f"{r['seconds']:.1f}" for r in runs)
    return [label, f"{documents / seconds:,.1f} docs/s", f"{payload / 1e6 / seconds:,.2f} MB/s", ratio,
            f"{kept} kept; {times} s"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datatrove-python", default=os.environ.get("CS336_DATATROVE_PYTHON"),
                        help="the python of a venv with datatrove (default: $CS336_DATATROVE_PYTHON)")
    parser.add_argument("--inputs", type=Path, nargs="+", help="WARC files (default: the benchmark crawl)")
    parser.add_argument("--only", choices=("filter", "minhash"), action="append", help="run only these tables")
    parser.add_argument("--workers", type=int, default=2, help="processes on each side")
    parser.add_argument("--num-hashes", type=int, default=128)
    parser.add_argument("--num-bands", type=int, default=16)
    parser.add_argument("--no-trafilatura", dest="trafilatura", action="store_false",
                        help="skip datatrove with its default extractor (the slowest row)")
    parser.add_argument("--show-differences", type=int, default=0, metavar="N",
                        help="list the first N URLs kept by one side only")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best is kept")
    parser.add_argument("--out", type=Path, default=Path("reports/data-pipeline.md"))
    args = parser.parse_args(argv)
    problem = datatrove_problem(args.datatrove_python)
    if args.inputs:
        inputs = [path.resolve() for path in args.inputs]
    else:
        from bench.data.crawl import FILES, build

        crawl = build()
        inputs = [crawl / name for name in FILES]
    documents, payload = html_input(inputs)
    notes = [f"input: {', '.join(p.name for p in inputs)}: {documents} HTML documents, {payload / 1e6:.1f} MB",
             f"{args.workers} workers each, {os.cpu_count()} CPUs; wall time of each whole run, best of {args.repeat}",
             "peer: " + (problem or f"datatrove {datatrove_version(args.datatrove_python)} "
                                    f"({args.datatrove_python})")]
    header = ["pipeline", "documents/s", "HTML MB/s", "vs datatrove (resiliparse)", "documents kept; runs"]
    sections = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as temp:
        for name in args.only or ["filter", "minhash"]:
            rows, more = table(name, name == "minhash", inputs, documents, payload, Path(temp), args, problem)
            title = "extract -> English -> Gopher" + (" -> MinHash dedup" if name == "minhash" else "")
            sections.append(report(f"data pipeline: {title}", "python -m bench.data.pipeline",
                                   sys.argv[1:] if argv is None else argv, torch.device("cpu"), notes + more,
                                   header, rows))
    write_report("\n".join(sections), args.out)


if __name__ == "__main__":
    main()
