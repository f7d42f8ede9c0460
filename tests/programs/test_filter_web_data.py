"""The ``filter-web-data`` program end to end on the fixture WARCs (fixtures/data/web/): the accounting, the known
duplicates, broken records, the token arrays `train` reads, SIGKILL and resume, and the same bytes on one worker,
local processes and a Ray cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from impl.data.gopher import gopher_rule_failures
from impl.data.minhash import clusters, duplicates_to_drop, shingles
from impl.programs.config import TrainConfig
from impl.programs.corpora import EOT
from impl.programs.filter_web_data import GPT2_DIR, main
from impl.programs.tokenizer import load_tokenizer
from impl.programs.trainer import load_tokens, read_sidecar
from impl.programs.web_config import GOPHER_RULES
from tests.harness.helpers import REPO
from tests.programs.web_data import (DEDUP, FULL, RAY_ENV, WARCS, WEB, finish, page, program, ray_cluster, response,
                                     train_fasttext, tree, warc_record, write_warc)

pytestmark = pytest.mark.e2e


def run(tmp: Path, config: str, *flags: str, inputs=WARCS) -> tuple[Path, str]:
    (tmp / "config.toml").write_text(config)
    out = tmp / "out"
    code = main([*map(str, inputs), "--config", str(tmp / "config.toml"), "--out", str(out), *flags])
    assert code == 0
    return out, (out / "summary.json").read_text()


def documents(out: Path) -> list[dict]:
    return [json.loads(line) for path in sorted((out / "documents").glob("*.jsonl")) for line in path.open()]


def stage1_texts(out: Path) -> list[dict]:
    """The documents that reached dedup, in corpus order (the stage-1 shards)."""
    return [json.loads(line) for path in sorted((out / "work" / "filter").glob("*.jsonl")) for line in path.open()]


@pytest.fixture(scope="module")
def dedup_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dedup")
    out, _ = run(tmp, DEDUP, "--workers", "2")
    return out


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The baseline of the resume and engine tests: every stage, one worker (this process)."""
    tmp = tmp_path_factory.mktemp("full")
    out, _ = run(tmp, FULL, "--workers", "1")
    return tmp, out


def test_every_document_is_accounted_for(dedup_run, capsys):
    summary = json.loads((dedup_run / "summary.json").read_text())
    docs = summary["documents"]
    # The documents the reader reaches, from the fixtures' own sidecars: every record but warcinfo and request, up
    # to the damaged header of broken-headers.warc.gz (fastwarc reads 4 of its 6 records).
    expected_in = 0
    for warc in WARCS:
        sidecar = json.loads(warc.with_name(warc.name.replace(".warc.gz", ".expected.json")).read_text())
        rows = sidecar["readers"]["fastwarc"].get("rows") or sidecar["records"]
        expected_in += sum(row["type"] not in ("warcinfo", "request") for row in rows)
    assert docs["in"] == expected_in == 127
    assert docs["in"] == docs["kept"] + docs["dropped"] + docs["failed"]
    assert docs["kept"] == len(documents(dedup_run))
    assert summary["failed"] == {"empty": 2, "malformed_record": 3, "non_html": 3, "truncated": 2}
    urls = {reason: {e["url"] for e in examples} for reason, examples in summary["examples"].items()}
    assert urls["truncated"] == {"https://www.example.org/truncated.html",
                                 "https://www.debian.org/doc/manuals/debian-faq/pkgtools.fr.html"}
    assert urls["non_html"] == {f"https://www.example.org/{n}" for n in ("pixel.png", "manual.pdf", "download.bin")}
    assert urls["empty"] == {"https://www.example.org/empty.html", "https://www.example.org/blank.html"}
    assert urls["malformed_record"] == {"", "https://www.example.org/no-http.html"}  # two without a URL
    assert summary["damaged_files"] == [{"file": "broken-headers.warc.gz", "error": "OSError: Invalid WARC header",
                                         "records_read": 4}]
    assert summary["other_records"] == {"request": 30, "warcinfo": 5}
    # Pages whose bytes are not what their headers say are decoded from the bytes, not dropped.
    kept = {d["url"]: d["text"] for d in documents(dedup_run)}
    assert "Debian и ядро" in kept["https://www.example.org/ru/kernel.html"]  # windows-1251 labelled utf-8
    assert "この FAQ についての一般情報" in kept[
        "https://www.example.org/ja/faqinfo.html"]  # shift_jis labelled iso-8859-1


def test_each_write_task_loads_only_its_own_files_drop_list(dedup_run):
    """The dedup state stays sharded to the end (memory per worker bounded as the corpus grows): one drop list per
    input file, naming positions of that file's own documents; together, every document MinHash dropped."""
    docs = stage1_texts(dedup_run)
    shard_sizes = [sum(1 for _ in path.open()) for path in sorted((dedup_run / "work" / "filter").glob("*.jsonl"))]
    lists = sorted((dedup_run / "work" / "dedup").glob("drop-*.json"))
    assert [p.name for p in lists] == [f"drop-{i:05d}.json" for i in range(len(shard_sizes))]
    drops = [json.loads(p.read_text()) for p in lists]
    assert all(0 <= int(position) < size for drop, size in zip(drops, shard_sizes) for position in drop)
    assert sum(map(len, drops)) == len(docs) - len(documents(dedup_run))


def test_dedup_drops_exactly_the_known_duplicates(dedup_run):
    docs = stage1_texts(dedup_run)
    key = [(d["source"], d["id"]) for d in docs]
    kept = {(d["source"], d["id"]) for d in documents(dedup_run)}
    # The oracle: every pair's true Jaccard (no LSH), clusters, one survivor each.
    sets = [shingles(d["text"], 5) for d in docs]  # the n-grams as strings: no hashing in the oracle
    pairs = [(i, j) for i in range(len(docs)) for j in range(i + 1, len(docs))
             if sets[i] | sets[j] and len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= 0.9]
    groups = clusters(pairs)
    assert all(sum(key[i] in kept for i in group) == 1 for group in groups)
    in_groups = {i for group in groups for i in group}
    assert all(key[i] in kept for i in range(len(docs)) if i not in in_groups)
    # The survivors are those the library draws from the seed for these texts in this order.
    drop = duplicates_to_drop([d["text"] for d in docs], 128, 16, 5, 0.9, seed=0)
    assert {key[i] for i in drop} == set(key) - kept
    # The groups are the fixture's 17 known copies, each with its original (Jaccard 0.943-0.990 and 1.0) ...
    expected = json.loads((WEB / "debian-docs.expected.json").read_text())["records"]
    known = {frozenset({("debian-docs.warc.gz", r["id"]), ("debian-docs.warc.gz", original)})
             for r in expected if (original := r.get("exact_duplicate_of") or r.get("near_duplicate_of"))}
    found = {frozenset(key[i] for i in group) for group in groups}
    assert len(known) == 17 and known <= found
    # ... and three across the other files: the two valid pages that broken-headers and truncated-gzip share, and
    # malformed's page with 5 invalid bytes beside its copy without a Content-Type.
    others = [{(d["source"], d["url"]) for d in (docs[i] for i in group)} for group in groups
              if frozenset(key[i] for i in group) not in known]
    faq = "https://www.debian.org/doc/manuals/debian-faq"
    assert sorted(map(sorted, others)) == sorted(map(sorted, [
        {("broken-headers.warc.gz", f"{faq}/software.en.html"), ("truncated-gzip.warc.gz", f"{faq}/software.en.html")},
        {("broken-headers.warc.gz", f"{faq}/choosing.de.html"), ("truncated-gzip.warc.gz", f"{faq}/choosing.de.html")},
        {("malformed.warc.gz", "https://www.example.org/broken-bytes.html"),
         ("malformed.warc.gz", "https://www.example.org/no-type.html")}]))
    summary = json.loads((dedup_run / "summary.json").read_text())
    assert summary["dropped"] == {"minhash": 20} and summary["dedup"]["clusters"] == 20


def test_the_token_array_loads_in_train_and_decodes_to_the_kept_texts(dedup_run):
    cfg = TrainConfig(vocab_size=read_sidecar(str(dedup_run / "tokens.npy"))["vocab_size"], context_length=16)
    tokens = load_tokens(str(dedup_run / "tokens.npy"), cfg)  # the train program's reader
    assert tokens.dtype == np.uint16 and cfg.vocab_size == 50257
    sidecar = read_sidecar(str(dedup_run / "tokens.npy"))
    assert sidecar["num_tokens"] == len(tokens) and sidecar["tokenizer_dir"] == str(GPT2_DIR.resolve())
    tokenizer = load_tokenizer(GPT2_DIR)
    texts = tokenizer.decode(tokens.tolist()).split(EOT)
    assert texts[-1] == "" and texts[:-1] == [d["text"] for d in documents(dedup_run)]


def test_wet_records_skip_extraction_and_dedup_the_same(dedup_run, tmp_path):
    out, _ = run(tmp_path, DEDUP, "--workers", "1", inputs=[WEB / "debian-docs.warc.wet.gz"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["documents"] == {"in": 89, "kept": 72, "dropped": 17, "failed": 0}
    from_warc = {d["url"]: d["text"] for d in stage1_texts(dedup_run) if d["source"] == "debian-docs.warc.gz"}
    assert {d["url"]: d["text"] for d in stage1_texts(out)} == from_warc  # the WET's text is resiliparse's
    records = json.loads((WEB / "debian-docs.expected.json").read_text())["records"]
    url = {r["id"]: r["url"] for r in records}
    kept = {d["url"] for d in documents(out)}
    for r in records:  # one of each known pair kept
        if original := r.get("exact_duplicate_of") or r.get("near_duplicate_of"):
            assert (r["url"] in kept) != (url[original] in kept)


def test_the_default_pipeline_filters_language_and_prints_the_table(tmp_path, capsys):
    assert main([str(w) for w in WARCS] + ["--out", str(tmp_path / "out"), "--workers", "2"]) == 0
    table = capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    docs = summary["documents"]
    assert docs["in"] == docs["kept"] + docs["dropped"] + docs["failed"] == 127
    assert summary["dropped"]["language"] >= 60  # the Debian pages in 10 other languages
    assert all(d["language"] == "en" and d["language_score"] >= 0.5 for d in documents(tmp_path / "out"))
    rows = [line.split() for line in table.splitlines()]
    assert ["in", str(docs["in"])] in rows and ["kept", str(docs["kept"]), f"{docs['kept'] / 127:.1%}"] in rows
    for line in ("  language", "  minhash", "  truncated", "damaged file: broken-headers"):
        assert line in table, table
    # A rerun of a finished run does nothing and prints the same table.
    assert main([str(w) for w in WARCS] + ["--out", str(tmp_path / "out")]) == 0
    assert "is complete" in capsys.readouterr().out


def test_a_bucket_of_many_copies_is_verified_in_linear_checks(tmp_path):
    """600 copies of one page and 600 of a near copy (one word changed) share LSH buckets: the 1,200 × 1,199 / 2
    candidate pairs are never all checked; each document is compared until it joins the cluster, and one survives."""
    text = " ".join(f"word{i % 97} term{i % 89}" for i in range(400))
    near = text.replace("word5 term5", "changed words", 1)
    records = [response(f"https://example.com/{kind}/{i}", page(body)) for i in range(600)
               for kind, body in (("copy", text), ("near", near))]
    warc = write_warc(tmp_path / "copies.warc.gz", records)
    out, summary = run(tmp_path, DEDUP, "--workers", "2", inputs=[warc])
    summary = json.loads(summary)
    assert summary["documents"]["kept"] == 1 and summary["dropped"]["minhash"] == 1199
    assert summary["dedup"]["clusters"] == 1
    # About one check per document and distinct bucket (3 here: both texts' bands, each text's own); every pair: 719,400.
    assert summary["dedup"]["jaccard_checks"] <= 1200 * summary["dedup"]["lsh_buckets"] <= 1200 * 4


def test_synthetic_cases_gopher_pii_classifier_line_dedup_and_broken_bytes(tmp_path):
    words = "the river ran past the mill where the miller kept his sacks of grain and flour".split()

    def prose(n: int, seed: int) -> str:  # n words, a different sequence for each seed
        return " ".join(f"{words[(i * seed) % 16]}{i % 7}" for i in range(n))

    footer = " ".join(f"Our site and its partners keep notes of visit {i} to improve the service." for i in range(6))
    boiler = ["Home | About | Contact", footer, "Copyright 2024 Example Corp. All rights reserved."]  # 60+ words
    spam = "buy cheap pills now best price click here " * 10
    records = [
        warc_record("warcinfo", None, b"software: test\r\n", "application/warc-fields"),
        response("https://a.example/short", page("Too short to keep.")),  # gopher:word_count
        response("https://a.example/dots", page(*[f"{prose(12, 3)} and then..." for _ in range(8)]).replace(
            b"</p><p>", b"<br>\n")),  # gopher:ellipsis_lines
        response("https://a.example/pii", page(prose(80, 5), "Write to jane.doe@example.com or call (283) 182-3829, "
                                                               "server 192.0.2.146.")),
        response("https://a.example/latin1", page("Ce café était déjà fermé à Noël. " + prose(80, 7)).decode()
                 .encode("latin-1"), content_type="text/html"),  # not UTF-8, no charset: detected
        response("https://a.example/spam", page(spam)),  # the classifier's
        response("https://a.example/boiler1", page(*boiler, prose(90, 9))),
        response("https://a.example/boiler2", page(*boiler, prose(90, 11))),
        response("https://a.example/only-boiler", page(*boiler)),  # every line elsewhere: exact_line_dedup
        response("https://a.example/gone", page("Not here."), status="404 Not Found"),
        response("https://a.example/nul", b"\x00\x01\x02\x03" * 200),  # binary labelled text/html
        warc_record("conversion", "https://a.example/wet", b"\xff\xfe\xfa" * 100 + b"text", "text/plain"),
        warc_record("response", "https://a.example/no-id", b"HTTP/1.1 200 OK\r\n\r\n<p>x</p>",
                    "application/http; msgtype=response", record_id=False),
    ]
    warc = write_warc(tmp_path / "synthetic.warc.gz", records)
    model = train_fasttext(tmp_path / "spam.bin", [f"__label__spam {spam}"] * 30 + [f"__label__ham {prose(40, s)}"
                                                                                     for s in range(1, 31)])
    config = f"""
[[filters]]
name = "extract"
[[filters]]
name = "gopher"
[[filters]]
name = "mask_pii"
[[filters]]
name = "classifier"
model = "{model}"
label = "spam"
threshold = 0.5
[[filters]]
name = "exact_line_dedup"
[[filters]]
name = "minhash"
"""
    out, _ = run(tmp_path, config, "--workers", "2", inputs=[warc])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["documents"] == {"in": 12, "kept": 4, "dropped": 4, "failed": 4}
    assert summary["dropped"] == {"classifier:spam": 1, "exact_line_dedup": 1, "gopher:ellipsis_lines": 1,
                                  "gopher:word_count": 1}
    assert summary["failed"] == {"http_status": 1, "malformed_record": 1, "non_html": 1, "undecodable": 1}
    assert summary["masks"] == {"documents": 1, "emails": 1, "ips": 1, "phones": 1}
    kept = {d["url"]: d for d in documents(out)}
    assert set(kept) == {f"https://a.example/{n}" for n in ("pii", "latin1", "boiler1", "boiler2")}
    assert "|||EMAIL_ADDRESS|||" in kept["https://a.example/pii"]["text"] and "jane" not in str(kept)
    assert "café était déjà fermé à Noël" in kept["https://a.example/latin1"]["text"]
    assert all("Copyright" not in d["text"] for d in kept.values())  # a line in 3 documents: removed everywhere
    assert kept["https://a.example/pii"]["scores"]["classifier:spam"] < 0.5


def test_the_gopher_rule_names_are_the_librarys():
    assert set(gopher_rule_failures("")) < set(GOPHER_RULES)
    assert gopher_rule_failures("1234567890123...\n" * 10) == list(GOPHER_RULES)  # the same names, in order


# SIGKILL at chosen moments: a copy of the program that stops (and says so in a flag file) right after the done
# marker of one task, or inside the atomic write of one file (its temp file written, not yet renamed).
KILLED_AT = """
import os, sys, time
import impl.programs.web_stages as stages
flag, stage, task, argv = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def stop():
    open(flag, "w").close()
    time.sleep(3600)

real_finish, real_fsync = stages.finish, os.fsync
def finish(job, name, done, result):
    result = real_finish(job, name, done, result)
    if name == stage and str(done) == task:
        stop()
    return result

def fsync(fd):
    if stage == "write-file" and os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(task):
        stop()
    real_fsync(fd)

stages.finish, os.fsync = finish, fsync
from impl.programs.filter_web_data import main
sys.exit(main(argv))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds the file being written through /proc")
def test_killed_runs_resume_to_the_same_bytes(full_run, tmp_path):
    baseline_dir, baseline = full_run
    argv = [*map(str, WARCS), "--config", str(baseline_dir / "config.toml"), "--out", str(tmp_path / "out"),
            "--workers", "2"]
    moments = [("filter", "1"), ("lines", "2"), ("lsh", "b005-p002"), ("write-file", ".00001.debian-docs"),
               ("write-file", ".tokens.npy.")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for n, (stage, task) in enumerate(moments):
        flag = tmp_path / f"flag{n}"
        before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.done.json")}
        process = subprocess.Popen([sys.executable, "-c", KILLED_AT, str(flag), stage, task, *argv], cwd=REPO,
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert process.poll() is None, process.stderr.read()[-3000:]
            assert time.monotonic() < deadline, f"the run did not reach {stage} {task}"
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGKILL)  # the program and its workers, at once
        process.wait(timeout=30)
        process.stderr.close()
        assert not (tmp_path / "out" / "summary.json").exists()
        assert (n == 0) == (not before)
        assert all(p.stat().st_mtime_ns == t for p, t in before.items()), "a resumed run redid finished tasks"
    finish(program(argv))
    assert not [p for p in (tmp_path / "out").rglob("*.tmp")]  # the temp files the kills left were removed
    assert tree(tmp_path / "out") == tree(baseline)


@pytest.mark.distributed
def test_local_processes_give_the_same_bytes_as_one_worker(full_run, tmp_path):
    baseline_dir, baseline = full_run
    finish(program([*map(str, WARCS), "--config", str(baseline_dir / "config.toml"), "--out", str(tmp_path / "out"),
                    "--workers", "2"]))
    assert tree(tmp_path / "out") == tree(baseline)


@pytest.mark.distributed
@pytest.mark.slow
def test_a_ray_cluster_gives_the_same_bytes_as_one_worker(full_run, tmp_path):
    """On a Ray cluster (a head node started here), from scratch and after the driver was SIGKILLed mid-stage, and on
    Ray started by the program itself: the output tree is the one-worker run's, byte for byte."""
    pytest.importorskip("ray", reason="the data-cluster extra (nox -s tests installs it)")
    baseline_dir, baseline = full_run
    argv = [*map(str, WARCS), "--config", str(baseline_dir / "config.toml"), "--engine", "ray"]
    with ray_cluster(num_cpus=2) as address:  # `ray start --head` on 127.0.0.1: the multi-node path
        out = finish(program([*argv, "--out", str(tmp_path / "cluster"), "--address", address], env=RAY_ENV))
        assert f"on Ray (cluster {address}, 2 CPUs)" in out
        assert tree(tmp_path / "cluster") == tree(baseline)
        # The driver SIGKILLed while the cluster runs the LSH stage's tasks, then the same command again: the tasks
        # done are not redone, and the bytes are one worker's.
        resumed = [*argv, "--out", str(tmp_path / "killed"), "--address", address]
        killed = subprocess.Popen([sys.executable, "-m", "impl.programs.filter_web_data", *resumed], cwd=REPO,
                                  env={**os.environ, "PYTHONPATH": str(REPO), **RAY_ENV}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while not list((tmp_path / "killed" / "work" / "lsh").glob("*.done.json")):
            assert killed.poll() is None, "the run ended before its LSH stage"
            assert time.monotonic() < deadline, "the run did not reach its LSH stage"
            time.sleep(0.01)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        assert not (tmp_path / "killed" / "summary.json").exists()
        done = {p: p.stat().st_mtime_ns for p in (tmp_path / "killed").rglob("*.done.json")}
        finish(program(resumed, env=RAY_ENV))
        assert all(p.stat().st_mtime_ns == t for p, t in done.items()), "a resumed run redid finished tasks"
        assert tree(tmp_path / "killed") == tree(baseline)
    out = finish(program([*argv, "--out", str(tmp_path / "here"), "--workers", "2"], env=RAY_ENV))  # Ray started here
    assert "on Ray (started here, 2 CPUs)" in out
    assert tree(tmp_path / "here") == tree(baseline)
