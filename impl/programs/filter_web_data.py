"""The ``filter-web-data`` program: WARC / WET files to filtered, deduplicated training data (A4 §2-§4).

    filter-web-data 'crawl/*.warc.gz' --out runs/web                     # the default config, all local CPUs
    filter-web-data 'CC/*.warc.wet.gz' --config my.toml --out runs/web --workers 16
    filter-web-data 'CC/*.warc.wet.gz' --out runs/web --engine ray --address auto    # on a running Ray cluster
    train --train-data runs/web/tokens.npy ...                             # the token array `train` reads

The config (impl/programs/configs/filter_web_data.toml; impl/programs/web_config.py) lists the filters in order.
Outputs in ``--out``: ``documents/NNNNN.<input>.jsonl`` (one per input: id, url, source, record, language..., text),
``tokens.npy`` + ``tokens.json`` (uint16 ids, documents each ended by <|endoftext|>; the GPT-2 tokenizer by
default), ``summary.json`` (in = kept + dropped by reason + failed by reason, examples), and the count table on
stdout. The work is in stages of tasks (impl/programs/web_stages.py), each written atomically with a done marker:
rerun the same command after a crash or a kill and it goes on where it stopped, to the same bytes. ``run.json``
holds the settings the directory was made with; another config, other inputs or models are refused.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fixtures import FIXTURES_DIR, file_sha256
from impl.programs.cli import ArgumentParser, UsageError, UserError, positive_int, run
from impl.programs.engines import make_engine
from impl.programs.tokenizer import check_output, load_tokenizer, npy_header, token_sidecar, tokenizer_sha256
from impl.programs.web_config import check_models, read_config
from impl.programs.web_records import is_warc_file
from impl.programs.web_stages import (Job, choose_survivors, count_lines, filter_shard, finish_texts, lsh_bucket,
                                      lsh_tasks, open_target, save, verify_pairs, write_shard)
from impl.programs.web_summary import build_summary, format_table

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "filter_web_data.toml"
GPT2_DIR = FIXTURES_DIR / "data" / "gpt2"


def positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser("filter-web-data", "Filter WARC/WET files into training data: extraction, language, "
                                               "quality, PII masks, dedup, tokens (A4 §2-§4).")
    parser.add_argument("inputs", nargs="+", help="WARC or WET files, or globs (quote them: 'CC/*.warc.wet.gz')")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML file of the filters")
    parser.add_argument("--out", type=Path, required=True, help="output directory (rerun the same command to resume)")
    parser.add_argument("--workers", type=positive_int, default=len(os.sched_getaffinity(0)),
                        help="local processes (1: in this process), or the CPUs of a Ray instance started here")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: processes of this machine; ray: Ray tasks (pip install '.[data-cluster]')")
    parser.add_argument("--address", help="--engine ray: a running cluster (auto, host:6379, ray://host:10001); "
                                           "default: start Ray here with --workers CPUs")
    parser.add_argument("--task-timeout", type=positive_seconds, default=3600.0,
                        help="seconds without any task finishing before the run stops instead of hanging")
    return run(parser, argv, filter_web_data)


def filter_web_data(args: argparse.Namespace) -> int:
    if args.address and args.engine != "ray":
        raise UsageError("--address applies to --engine ray only")
    config = read_config(args.config)
    inputs = expand_inputs(args.inputs)
    check_output(args.out, directory=True)
    tokenizer_dir = Path(config.output["tokenizer"] or GPT2_DIR)
    check_tokenizer(tokenizer_dir)
    models = check_models(config)
    manifest = {"program": "filter-web-data", "config": config.as_dict(),
                "inputs": [{"path": path, "bytes": os.stat(path).st_size, "mtime_ns": os.stat(path).st_mtime_ns}
                           for path in inputs],
                "models": {fid: {"path": path, "sha256": file_sha256(path)} for fid, path in models.items()},
                "tokenizer": {"dir": str(tokenizer_dir.resolve()), **tokenizer_sha256(tokenizer_dir)}}
    manifest = {"sha256": hashlib.sha256(canonical(manifest)).hexdigest(), **manifest}
    fresh = check_claim(args.out, manifest)
    summary_path = args.out / "summary.json"
    job = Job(str(args.out.resolve()), tuple(inputs), config, models, str(tokenizer_dir.resolve()))
    if not fresh and summary_path.is_file():  # done before: the same outputs, nothing to do
        print(format_table(json.loads(summary_path.read_text(encoding="utf-8")), [f.id for f in config.filters]))
        print(f"filter-web-data: {args.out} is complete (summary.json); nothing to do")
        return 0
    engine = make_engine(args.engine, args.workers, args.task_timeout, args.address)
    start = time.perf_counter()
    try:
        if fresh:
            args.out.mkdir(parents=True, exist_ok=True)
            save(args.out / "run.json", manifest)
        summary = run_stages(job, engine, manifest["sha256"])
    finally:
        engine.close()
    seconds = time.perf_counter() - start
    print(format_table(summary, [f.id for f in config.filters]))
    docs = summary["documents"]["in"]
    print(f"filter-web-data: {len(inputs)} files, {docs} documents in {seconds:.1f} s ({docs / seconds:.1f} docs/s) "
          f"on {engine.description}; {summary['tokens']:,} tokens -> {args.out}/tokens.npy, documents/, summary.json")
    return 0


def expand_inputs(patterns: list[str]) -> list[str]:
    """Absolute paths of the input files, sorted (the order of the shards and of the documents in them)."""
    paths = set()
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
            if not matches:
                raise UserError(f"input {pattern} matches no file")
        elif not os.path.exists(pattern):
            raise UserError(f"input {pattern} does not exist")
        elif os.path.isdir(pattern):
            raise UserError(f"input {pattern} is a directory: give files, or a glob such as '{pattern}/*.warc.gz'")
        else:
            matches = [pattern]
        paths.update(os.path.abspath(p) for p in matches)
    for path in sorted(paths):
        if os.path.getsize(path) == 0:
            raise UserError(f"input {path} is empty")
        if not is_warc_file(Path(path)):
            raise UserError(f"input {path} is not a WARC or WET file (neither gzip nor 'WARC/' at its start)")
    return sorted(paths)


def check_tokenizer(directory: Path) -> None:
    from impl.programs.corpora import EOT

    tokenizer = load_tokenizer(directory)
    if EOT not in tokenizer.special_ids:
        raise UserError(f"output.tokenizer {directory} has no {EOT} special token to join documents with")
    if max(tokenizer.vocab) >= 2**16:
        raise UserError(f"output.tokenizer {directory}: ids reach {max(tokenizer.vocab)}, which do not fit uint16")


def canonical(data) -> bytes:
    return json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")


def check_claim(out: Path, manifest: dict) -> bool:
    """True for a new run; False to resume one of the same settings; anything else is refused."""
    run_file = out / "run.json"
    if not run_file.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise UserError(f"--out {out} is not empty and holds no filter-web-data run (no run.json): give a new "
                            f"or empty directory")
        return True
    try:
        saved = json.loads(run_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"--out {out}: run.json is not the JSON filter-web-data writes") from None
    if saved.get("sha256") != manifest["sha256"]:
        changes = differences(saved, manifest)
        raise UserError(f"--out {out} holds a run with other settings ({'; '.join(changes[:3])}"
                        f"{'; ...' if len(changes) > 3 else ''}): use another --out, or delete it to start over")
    return False


NONE = "(none)"


def differences(old, new, where: str = "") -> list[str]:
    """``where: old -> new`` for each setting that differs (config fields by their TOML names)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [change for key in sorted((set(old) | set(new)) - {"sha256"})
                for change in differences(old.get(key, NONE), new.get(key, NONE),
                                          f"{where}.{key}".lstrip(".").removeprefix("config."))]
    if isinstance(old, list) and isinstance(new, list):
        return [change for i in range(max(len(old), len(new))) for change in
                differences(old[i] if i < len(old) else NONE, new[i] if i < len(new) else NONE, f"{where}[{i}]")]
    shown = [value if value is NONE else json.dumps(value, ensure_ascii=False) for value in (old, new)]
    return [] if old == new else [f"{where}: {shown[0]} -> {shown[1]}"[:200]]


def run_stages(job: Job, engine, sha256: str) -> dict:
    config, shards = job.config, range(len(job.inputs))
    minhash = config.filter("minhash")
    results = {"filter": stage(job, engine, "filter", filter_shard, shards)}
    if job.line_dedup:
        results["lines"] = stage(job, engine, "lines", count_lines, range(config.partitions))
    if job.line_dedup or minhash:
        results["text"] = stage(job, engine, "text", finish_texts, shards)
    dedup = {}
    if job.line_dedup:
        dedup["duplicated_lines"] = sum(r["duplicated_lines"] for r in results["lines"])
    if minhash:
        stage(job, engine, "lsh", lsh_bucket, lsh_tasks(job))
        verified = stage(job, engine, "verify", verify_pairs, range(config.partitions))
        survivors = job.path("dedup", "survivors.json")
        chosen = json.loads(survivors.read_text(encoding="utf-8")) if survivors.is_file() else choose_survivors(job)
        dedup |= {"lsh_buckets": sum(r["buckets"] for r in verified),
                  "jaccard_checks": sum(r["jaccard_checks"] for r in verified), "clusters": chosen["clusters"]}
    results["write"] = stage(job, engine, "write", write_shard, shards)
    out = Path(job.out)
    n_tokens = write_tokens(job, out / "tokens.npy")
    documents = [job.documents_file(i) for i in shards]
    with open_target(out / "tokens.json") as file:
        file.write(token_sidecar(n_tokens, load_tokenizer(Path(job.tokenizer)), Path(job.tokenizer), "documents/",
                                 sum(p.stat().st_size for p in documents)))
    tallies = [r["tally"] for name in ("filter", "text", "write") for r in results.get(name, [])]
    summary = build_summary(sha256, tallies, config.output["examples"],
                            {"dedup": dedup, "tokens": n_tokens, "documents_files": [p.name for p in documents]})
    save(out / "summary.json", summary)  # last: the run's done marker
    return summary


def stage(job: Job, engine, name: str, fn, tasks) -> list[dict]:
    """Run the tasks of a stage that have no done marker; return every task's result (from the markers)."""
    tasks = list(tasks)
    pending = [task for task in tasks if not job.marker(name, task).is_file()]
    if name == "filter":  # the progress that matters: documents per second
        bar = tqdm(desc=name, unit="doc", postfix=f"files {len(tasks) - len(pending)}/{len(tasks)}")
        done = [len(tasks) - len(pending)]

        def progress(task, result) -> None:
            done[0] += 1
            bar.set_postfix_str(f"files {done[0]}/{len(tasks)}", refresh=False)
            bar.update(result["documents"])
    else:
        bar = tqdm(desc=name, unit="task", total=len(tasks), initial=len(tasks) - len(pending))

        def progress(task, result) -> None:
            bar.update(1)
    with bar:
        engine.map(fn, job, pending, progress)
    return [json.loads(job.marker(name, task).read_text(encoding="utf-8")) for task in tasks]


def write_tokens(job: Job, path: Path) -> int:
    """The shards' token arrays, in order, as one .npy (memory-mapped by `train`)."""
    arrays = [np.load(job.path("write", f"{i:05d}.tokens.npy"), mmap_mode="r") for i in range(len(job.inputs))]
    n_tokens = sum(len(a) for a in arrays)
    with open_target(path, "wb") as file:
        file.write(npy_header(n_tokens))
        for array in arrays:
            file.write(np.ascontiguousarray(array, dtype="<u2").tobytes())
    return n_tokens


if __name__ == "__main__":
    raise SystemExit(main())
