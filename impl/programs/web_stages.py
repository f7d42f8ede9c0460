"""The tasks of ``filter-web-data``, stage by stage; each writes its files atomically, then a done marker.

    1 filter   per input file: read, extract, document filters, mask -> work/filter/NNNNN.jsonl (+ line keys)
    2 lines    per partition of line keys (exact_line_dedup): the keys seen more than once -> work/lines/
    3 text     per input file: lines removed, MinHash signatures of what is left -> work/text/
    4 lsh      per (band, partition of its bucket keys): candidate pairs -> work/lsh/
    5 verify   per partition of the pairs: true Jaccard of the shingles, recomputed for those documents only
    6 dedup    (the driver) clusters of the verified pairs, one survivor each, chosen from the seed -> one drop
               list per input file, work/dedup/drop-NNNNN.json, then work/dedup/survivors.json
    7 write    per input file, with its own drop list: the surviving documents -> documents/NNNNN.<name>.jsonl and
               token ids

A document's global id is ``shard << 32 | position in its stage-1 file``: sorted ids are the corpus order, so
that clusters and survivors are those ``impl.data.minhash.duplicates_to_drop`` picks for the same texts in that
order. Every task is a pure function of its inputs: run twice (a resumed run), it writes the same bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from impl.programs.files import atomic_write, remove_stale_temps
from impl.programs.tokenizer import npy_header
from impl.programs.web_config import PipelineConfig
from impl.programs.web_filters import DocumentFilters, Tally, snippet
from impl.programs.web_records import FileEnd, read_documents

KEY = np.dtype([("hi", "<u8"), ("lo", "<u8")])  # a line's 128-bit hash (impl.data.dedup.line_key)


@dataclass(frozen=True)
class Job:
    """Everything a task needs, picklable: the same on every worker of every engine."""
    out: str
    inputs: tuple[str, ...]
    config: PipelineConfig
    models: dict[str, str]  # fastText filter id -> model file
    tokenizer: str  # directory

    def path(self, stage: str, name: str) -> Path:
        return Path(self.out) / "work" / stage / name

    def documents_file(self, i: int) -> Path:
        name = Path(self.inputs[i]).name
        return Path(self.out) / "documents" / f"{i:05d}.{name.removesuffix('.gz')}.jsonl"

    def marker(self, stage: str, task: int | str) -> Path:
        return self.path(stage, f"{task:05d}.done.json" if isinstance(task, int) else f"{task}.done.json")

    @property
    def line_dedup(self) -> bool:
        return self.config.filter("exact_line_dedup") is not None


def save(path: Path, data) -> None:
    """An .npy or a JSON file, atomically."""
    with open_target(path, "wb" if path.suffix == ".npy" else "w") as file:
        if path.suffix == ".npy":
            np.save(file, data, allow_pickle=False)
        else:
            file.write(json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n")


@contextmanager
def open_target(path: Path, mode: str = "w") -> Iterator[IO]:
    """``path`` written atomically, as a stream (the temp files a killed run left beside it removed first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    with atomic_write(path, mode) as file:
        yield file


def finish(job: Job, stage: str, task, result: dict) -> dict:
    save(job.marker(stage, task), result)
    return result


def new_tally(job: Job) -> Tally:
    return Tally(max_examples=job.config.output["examples"])


def line_keys(text: str) -> np.ndarray:
    from impl.data.dedup import line_key

    keys = [line_key(line.encode("utf-8")) for line in text.split("\n")]
    return np.array([(k >> 64, k & (2**64 - 1)) for k in keys], dtype=KEY)


# 1 -----------------------------------------------------------------------------------------------------------------
def filter_shard(job: Job, i: int) -> dict:
    path, tally = Path(job.inputs[i]), new_tally(job)
    filters = DocumentFilters(job.config.filters, job.models)
    chars = job.config.output["snippet_chars"]
    passed, keys = 0, []
    with open_target(job.path("filter", f"{i:05d}.jsonl")) as out:
        for item in read_documents(path, job.config.filter("extract").options["max_replacement_fraction"]):
            if isinstance(item, FileEnd):
                tally.other_records = item.other_records
                if item.error:
                    tally.damaged_files.append({"file": path.name, "error": item.error,
                                                "records_read": item.records_read})
                continue
            tally.documents += 1
            if item.failure:
                tally.count("failed", item.failure, {"url": item.url, "detail": item.detail})
                continue
            doc = {"id": item.id, "url": item.url, "source": path.name, "record": item.index, "text": item.text}
            dropped = filters.apply(doc, tally)
            if dropped:
                tally.count("dropped", dropped[0], {"url": doc["url"], "detail": dropped[1],
                                                    "snippet": snippet(doc["text"], chars)})
                continue
            doc["text"] = doc.pop("text")  # last: the metadata first on each line
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")
            passed += 1
            if job.line_dedup:
                keys.append(line_keys(doc["text"]))
    if job.line_dedup:
        save(job.path("filter", f"{i:05d}.lines.npy"), np.concatenate(keys) if keys else np.zeros(0, KEY))
    return finish(job, "filter", i, {"documents": tally.documents, "passed": passed, "tally": tally.to_dict()})


# 2 -----------------------------------------------------------------------------------------------------------------
def count_lines(job: Job, p: int) -> dict:
    parts = job.config.partitions
    mine = []
    for i in range(len(job.inputs)):
        keys = np.load(job.path("filter", f"{i:05d}.lines.npy"), mmap_mode="r")
        mine.append(np.asarray(keys[keys["lo"] % parts == p]))
    unique, counts = np.unique(np.concatenate(mine), return_counts=True)
    save(job.path("lines", f"p{p:03d}.npy"), unique[counts > 1])
    return finish(job, "lines", p, {"duplicated_lines": int((counts > 1).sum())})


# 3 -----------------------------------------------------------------------------------------------------------------
def final_docs(job: Job, i: int) -> Iterator[tuple[dict, str | None]]:
    """Each stage-1 document of shard ``i`` and its text after exact line dedup (None: no text left)."""
    keep = np.load(job.path("text", f"{i:05d}.keep.npy")) if job.line_dedup else None
    start = 0
    with open(job.path("filter", f"{i:05d}.jsonl"), encoding="utf-8") as file:
        for line in file:
            doc = json.loads(line)
            if keep is not None:
                lines = doc["text"].split("\n")
                doc["text"] = "\n".join(x for x, k in zip(lines, keep[start:start + len(lines)]) if k)
                start += len(lines)
            yield doc, (doc["text"] if doc["text"].strip() else None)


def finish_texts(job: Job, i: int) -> dict:
    tally = new_tally(job)
    if job.line_dedup:
        keys = np.load(job.path("filter", f"{i:05d}.lines.npy"))
        keep = np.ones(len(keys), dtype=bool)
        for p in range(job.config.partitions):
            mine = keys["lo"] % job.config.partitions == p
            keep[mine] = ~np.isin(keys[mine], np.load(job.path("lines", f"p{p:03d}.npy")))
        save(job.path("text", f"{i:05d}.keep.npy"), keep)
    minhash = job.config.filter("minhash")
    signatures, has = [], []
    if minhash:
        from impl.data.minhash import MinHasher, shingle_hashes

        hasher = MinHasher(minhash.options["num_hashes"], minhash.options["seed"])
    for doc, text in final_docs(job, i):
        if text is None:
            tally.count("dropped", job.config.filter("exact_line_dedup").id,
                        {"url": doc["url"], "detail": "every line occurs elsewhere in the corpus"})
        if minhash:
            hashes = shingle_hashes(text or "", minhash.options["ngrams"])
            has.append(len(hashes) > 0)  # no words: never a duplicate
            signatures.append(hasher.signature(hashes) if len(hashes) else
                              np.zeros(minhash.options["num_hashes"], np.uint32))
    if minhash:
        k = minhash.options["num_hashes"]
        save(job.path("text", f"{i:05d}.sig.npy"), np.array(signatures, np.uint32).reshape(-1, k))  # (docs, k)
        save(job.path("text", f"{i:05d}.has.npy"), np.array(has, dtype=bool))
    return finish(job, "text", i, {"tally": tally.to_dict()})


# 4 -----------------------------------------------------------------------------------------------------------------
def lsh_tasks(job: Job) -> list[str]:
    bands = job.config.filter("minhash").options["num_bands"]
    return [f"b{b:03d}-p{p:03d}" for b in range(bands) for p in range(job.config.partitions)]


def lsh_bucket(job: Job, task: str) -> dict:
    """Candidate pairs of one band, for the documents whose band rows hash into partition ``p``."""
    band, p = (int(part[1:]) for part in task.split("-"))
    minhash = job.config.filter("minhash").options
    r = minhash["num_hashes"] // minhash["num_bands"]
    all_rows, all_ids = [], []
    for i in range(len(job.inputs)):
        rows = np.load(job.path("text", f"{i:05d}.sig.npy"), mmap_mode="r")[:, band * r:(band + 1) * r]  # (docs, r)
        has = np.load(job.path("text", f"{i:05d}.has.npy"))
        h = np.zeros(len(has), np.uint64)
        for j in range(r):
            h = h * np.uint64(1_000_003) ^ rows[:, j].astype(np.uint64)  # wraps: a partition hash, not the key
        mine = has & (h % np.uint64(job.config.partitions) == p)
        all_rows.append(np.ascontiguousarray(rows[mine]))
        all_ids.append((np.int64(i) << 32) | np.flatnonzero(mine).astype(np.int64))
    rows, ids = np.concatenate(all_rows), np.concatenate(all_ids)  # ids ascending
    keys = rows.view(np.dtype((np.void, 4 * r))).ravel()  # the band's rows as one exact key per document
    _, bucket = np.unique(keys, return_inverse=True)
    order = np.argsort(bucket, kind="stable")
    starts = np.flatnonzero(np.diff(bucket[order], prepend=-1))
    groups = [group for group in np.split(ids[order], starts[1:]) if len(group) > 1]  # ids ascend in each
    # (bucket number, document id) rows: the buckets themselves, not their pairs, which grow as the square of a bucket.
    rows = [(number, doc) for number, group in enumerate(groups) for doc in group.tolist()]
    save(job.path("lsh", f"{task}.npy"), np.array(rows, np.int64).reshape(-1, 2))
    return finish(job, "lsh", task, {"buckets": len(groups)})


# 5 -----------------------------------------------------------------------------------------------------------------
def verify_pairs(job: Job, q: int) -> dict:
    """The similar pairs that join the clusters of partition ``q``'s buckets (``join_similar``): true Jaccard checked,
    one comparison per document of a bucket of copies; their clusters are those of every candidate pair checked."""
    from impl.data.minhash import DisjointSets, join_similar, set_jaccard, shingle_hashes

    minhash = job.config.filter("minhash").options
    buckets = set()  # a bucket found in several bands is verified once
    for task in lsh_tasks(job):
        rows = np.load(job.path("lsh", f"{task}.npy"))
        buckets.update(tuple(docs.tolist()) for docs in np.split(rows[:, 1], np.flatnonzero(np.diff(rows[:, 0])) + 1)
                       if len(docs) > 1)
    mine = sorted(docs for docs in buckets if (docs[0] ^ docs[-1]) % job.config.partitions == q)
    needed = {doc for docs in mine for doc in docs}
    shingle_sets, urls = {}, {}
    for i in sorted({doc >> 32 for doc in needed}):
        for position, (doc, text) in enumerate(final_docs(job, i)):
            global_id = i << 32 | position
            if global_id in needed:
                shingle_sets[global_id] = np.unique(shingle_hashes(text or "", minhash["ngrams"]))
                urls[global_id] = doc["url"]
    checks = 0

    def similar(a: int, b: int) -> bool:
        nonlocal checks
        checks += 1
        return set_jaccard(shingle_sets[a], shingle_sets[b]) >= minhash["threshold"]

    sets, verified = DisjointSets(), []
    for docs in mine:
        verified += join_similar(list(docs), similar, sets)
    save(job.path("verify", f"q{q:03d}.npy"), np.array(sorted(verified), np.int64).reshape(-1, 2))
    involved = {doc: urls[doc] for pair in verified for doc in pair}
    urls = {str(doc): url for doc, url in sorted(involved.items())}
    return finish(job, "verify", q, {"buckets": len(mine), "jaccard_checks": checks, "urls": urls})


# 6 -----------------------------------------------------------------------------------------------------------------
def choose_survivors(job: Job) -> dict:
    """Clusters of the verified pairs (union-find) and one survivor each, drawn as duplicates_to_drop draws it.
    Written as one drop list per input file (``dedup/drop-NNNNN.json``: position -> the survivor's URL), so that a
    write task loads only its own file's, then ``survivors.json`` (the counts; the stage's done marker)."""
    from impl.data.minhash import clusters

    pairs, urls = [], {}
    for q in range(job.config.partitions):
        pairs += [tuple(pair) for pair in np.load(job.path("verify", f"q{q:03d}.npy")).tolist()]
        urls.update(json.loads(job.marker("verify", q).read_text(encoding="utf-8"))["urls"])
    chooser = random.Random(job.config.filter("minhash").options["seed"])
    drops: list[dict[str, str]] = [{} for _ in job.inputs]
    groups = clusters(sorted(pairs))
    for cluster in groups:
        keep = chooser.choice(cluster)
        for doc in cluster:
            if doc != keep:  # a document's id: its input file's index << 32 | its position there
                drops[doc >> 32][str(doc & 0xFFFFFFFF)] = urls[str(keep)]
    for i, drop in enumerate(drops):
        save(drop_list(job, i), drop)
    result = {"clusters": len(groups), "dropped": sum(map(len, drops))}
    save(job.path("dedup", "survivors.json"), result)
    return result


def drop_list(job: Job, i: int) -> Path:
    return job.path("dedup", f"drop-{i:05d}.json")


# 7 -----------------------------------------------------------------------------------------------------------------
@dataclass
class Encoder:
    tokenizer: object
    eot: int


_encoders: dict[str, Encoder] = {}


def encoder(directory: str) -> Encoder:
    if directory not in _encoders:
        from impl.programs.corpora import EOT
        from impl.programs.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(Path(directory))
        _encoders[directory] = Encoder(tokenizer, tokenizer.special_ids[EOT])
    return _encoders[directory]


def write_shard(job: Job, i: int) -> dict:
    tally, chars = new_tally(job), job.config.output["snippet_chars"]
    minhash = job.config.filter("minhash")
    drop = json.loads(drop_list(job, i).read_text(encoding="utf-8")) if minhash else {}
    enc, n_tokens = encoder(job.tokenizer), 0
    with open_target(job.documents_file(i)) as out, open_target(job.path("write", f"{i:05d}.tokens.npy"), "wb") as ids:
        ids.write(npy_header(0))  # the count is known at the end; the header's length does not depend on it
        for position, (doc, text) in enumerate(final_docs(job, i)):
            survivor = drop.get(str(position))
            if text is None:
                continue  # counted by stage 3
            if survivor is not None:
                tally.count("dropped", minhash.id, {"url": doc["url"], "detail": f"duplicate of {survivor}",
                                                    "snippet": snippet(text, chars)})
                continue
            tally.kept += 1
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")
            # Each document ended by <|endoftext|>: the ids `tokenize` gives the documents joined by it.
            tokens = np.array([*enc.tokenizer.encode(text), enc.eot], dtype=np.uint16)
            ids.write(tokens.astype("<u2").tobytes())
            n_tokens += len(tokens)
        ids.seek(0)
        ids.write(npy_header(n_tokens))
    return finish(job, "write", i, {"tokens": n_tokens, "tally": tally.to_dict()})
