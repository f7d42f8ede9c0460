"""Tokenizer benchmarks: BPE training vs HF tokenizers' BpeTrainer, encoding vs tiktoken and HF tokenizers.

    python3 -m nox -s bench_tokenizer                         # the reference ("ours") vs the peers
    python3 -m nox -s bench_tokenizer -- --impl mypkg         # yours too (or adapters:path/to/adapters.py)
    python3 -m nox -s bench_tokenizer -- -k "encode and not all_cores"

Training: 10K vocabulary with <|endoftext|> on the embedded prose corpus (7.9 MB) and on 120 MB
of Linux source text (bench/tokenizer/corpora.py builds it with apt-get), one round each; peak RSS of each
trainer is measured in a fresh process. Encoding: GPT-2's vocabulary on
the same text; "warm" rounds run after a first call has filled our pre-token cache (tiktoken
and HF keep no such cache and need none), and so does the text as a file's lines through encode_iterable.
All cores: ours in a process pool over document batches (caches warmed the same way), tiktoken's and HF's own
thread pools. Each "ours" test runs for the
implementation under test too (``--impl``, conftest.py), with its train_bpe and Tokenizer; a component it
lacks is a "missing" row in the table and a skipped test, never a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

tiktoken = pytest.importorskip("tiktoken", reason="the encoding peer is tiktoken")
hf = pytest.importorskip("tokenizers", reason="the training peer is HF tokenizers")

from fixtures import FIXTURES_DIR  # noqa: E402
from bench.common import load_implementation  # noqa: E402
from bench.tokenizer.corpora import linux_text  # noqa: E402
from impl.programs.corpora import EOT, embedded_corpus  # noqa: E402
from impl.tokenizer.encoding import GPT2_PATTERN, read_gpt2_files  # noqa: E402

GPT2 = FIXTURES_DIR / "data" / "gpt2"
VOCAB = 10_000
CORES = os.cpu_count() or 1


def hf_train(path: str) -> "hf.Tokenizer":
    from tokenizers import models, pre_tokenizers, trainers

    tokenizer = hf.Tokenizer(models.BPE())
    # ByteLevel with use_regex applies GPT-2's pattern: the same pre-tokenization as ours.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train([path], trainer)
    return tokenizer


def peak_rss_mb(statement: str) -> float:
    """Peak RSS (MB) of a fresh interpreter running ``statement``, its worker processes included."""
    report = ("import resource as r; print(max(r.getrusage(r.RUSAGE_SELF).ru_maxrss, "
              "r.getrusage(r.RUSAGE_CHILDREN).ru_maxrss) / 1024)")
    done = subprocess.run([sys.executable, "-c", f"{statement}\n{report}"], check=True, capture_output=True, text=True)
    return round(float(done.stdout.split()[-1]))


CORPORA = {"embedded prose corpus": lambda: embedded_corpus("train"), "Linux 6.1 text": linux_text}


@pytest.fixture(scope="module", params=list(CORPORA))
def corpus(request) -> tuple[str, str]:
    try:
        path = CORPORA[request.param]()
    except RuntimeError as error:
        pytest.skip(str(error))
    return f"train BPE, vocab {VOCAB}, {request.param} ({path.stat().st_size / 1e6:.0f} MB)", str(path)


@pytest.fixture(scope="module")
def gpt2_text() -> str:
    return embedded_corpus("train").read_text(encoding="utf-8")[:4_000_000]


def test_train(benchmark, corpus, contender):
    benchmark.group, path = corpus
    train_bpe = contender.member("train_bpe", benchmark.group)
    with contender.missing_as_row(benchmark.group):
        vocab, merges = benchmark.pedantic(train_bpe, (path, VOCAB, [EOT]), rounds=1, iterations=1)
    train = f"from bench.common import load_implementation as load; load({contender.label!r}).train_bpe"
    benchmark.extra_info.update(**contender.info, bytes=os.path.getsize(path),
                                peak_rss_mb=peak_rss_mb(f"{train}({path!r}, {VOCAB}, [{EOT!r}])"))
    if path == str(embedded_corpus("train")) and contender.bundle.provides("Tokenizer"):  # the compression
        text = open(path, encoding="utf-8").read()
        with contender.missing_as_row(benchmark.group):
            n_tokens = len(contender.bundle.Tokenizer(vocab, merges, [EOT]).encode(text))
        benchmark.extra_info["bytes_per_token"] = round(len(text.encode()) / n_tokens, 3)


def test_train_hf_tokenizers(benchmark, corpus):
    benchmark.group, path = corpus
    benchmark.pedantic(hf_train, (path,), rounds=1, iterations=1)
    benchmark.extra_info.update(impl=f"HF tokenizers {hf.__version__}", bytes=os.path.getsize(path),
                                peak_rss_mb=peak_rss_mb(f"from bench.tokenizer.test_tokenizer import hf_train; "
                                                        f"hf_train({path!r})"))


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    vocab, _ = read_gpt2_files(GPT2 / "vocab.json", GPT2 / "merges.txt")
    ranks = {token: i for i, token in vocab.items() if token != EOT.encode()}
    return tiktoken.Encoding("gpt2-local", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={EOT: 50256})


@pytest.fixture(scope="module")
def hf_gpt2():
    from tokenizers import decoders, models, pre_tokenizers

    tokenizer = hf.Tokenizer(models.BPE.from_file(str(GPT2 / "vocab.json"), str(GPT2 / "merges.txt")))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([EOT])
    return tokenizer


ENCODE = "encode 4 MB of prose, GPT-2 vocabulary, one process"


def gpt2_tokenizer(contender, group: str):
    """The contender's Tokenizer on GPT-2's files (a missing component: a row and a skip)."""
    tokenizer = contender.member("Tokenizer", group)
    with contender.missing_as_row(group):
        return tokenizer.from_files(GPT2 / "vocab.json", GPT2 / "merges.txt", [EOT])


def test_encode_first_call(benchmark, contender, gpt2_text):
    benchmark.group = ENCODE
    gpt2_tokenizer(contender, ENCODE)
    fresh = lambda: gpt2_tokenizer(contender, ENCODE)  # noqa: E731
    with contender.missing_as_row(ENCODE):
        benchmark.pedantic(lambda t: t.encode(gpt2_text), setup=lambda: ((fresh(),), {}), rounds=3)
    benchmark.extra_info.update(**contender.info, bytes=len(gpt2_text.encode()))
    benchmark.extra_info["impl"] += " (empty cache)"


def test_encode(benchmark, contender, tiktoken_gpt2, gpt2_text):
    benchmark.group = ENCODE
    tokenizer = gpt2_tokenizer(contender, ENCODE)
    with contender.missing_as_row(ENCODE):
        ids = tokenizer.encode(gpt2_text)  # fills the pre-token cache
        same = ids == tiktoken_gpt2.encode(gpt2_text, allowed_special="all")
        assert same or not contender.bundle.is_reference  # ours: same work, same answer
        benchmark.pedantic(tokenizer.encode, (gpt2_text,), rounds=5)
    benchmark.extra_info.update(**contender.info, bytes=len(gpt2_text.encode()))
    if not same:
        benchmark.extra_info["ids"] = "differ from tiktoken's"


def test_encode_iterable_lines(benchmark, contender, gpt2_text):
    """The same text as a file's lines through encode_iterable (cache warmed): how a corpus is streamed."""
    benchmark.group = ENCODE
    tokenizer = gpt2_tokenizer(contender, ENCODE)
    lines = gpt2_text.splitlines(keepends=True)
    with contender.missing_as_row(ENCODE):
        tokenizer.encode(gpt2_text)
        benchmark.pedantic(lambda: sum(1 for _ in tokenizer.encode_iterable(lines)), rounds=5)
    benchmark.extra_info.update(**contender.info, bytes=len(gpt2_text.encode()))
    benchmark.extra_info["impl"] += " (encode_iterable, line by line)"


def test_encode_tiktoken(benchmark, tiktoken_gpt2, gpt2_text):
    benchmark.group = ENCODE
    benchmark.pedantic(tiktoken_gpt2.encode, (gpt2_text,), {"allowed_special": "all"}, rounds=5)
    benchmark.extra_info.update(impl=f"tiktoken {tiktoken.__version__}", bytes=len(gpt2_text.encode()))


def test_encode_hf_tokenizers(benchmark, hf_gpt2, gpt2_text):
    benchmark.group = ENCODE
    benchmark.pedantic(hf_gpt2.encode, (gpt2_text,), rounds=5)
    benchmark.extra_info.update(impl=f"HF tokenizers {hf.__version__}", bytes=len(gpt2_text.encode()))


ENCODE_ALL = f"encode 4 MB of prose, GPT-2 vocabulary, {CORES} cores"


def documents(text: str) -> list[str]:
    return [d + EOT for d in text.split(EOT)]


def test_encode_all_cores(benchmark, contender, gpt2_text):
    from impl.tokenizer.training import worker_context

    benchmark.group = ENCODE_ALL
    gpt2_tokenizer(contender, ENCODE_ALL)  # missing: a row, before any worker starts
    docs = documents(gpt2_text)
    batches = [docs[i::CORES * 4] for i in range(CORES * 4)]  # few, large tasks: less pickling per byte
    with worker_context().Pool(CORES, _init_gpt2, (contender.label,)) as pool, contender.missing_as_row(ENCODE_ALL):
        pool.map(_encode_docs, batches)  # warm every worker's pre-token cache, as for the one-process rows
        benchmark.pedantic(lambda: pool.map(_encode_docs, batches), rounds=3)
    benchmark.extra_info.update(**contender.info, bytes=len(gpt2_text.encode()))


_worker = None


def _init_gpt2(label: str) -> None:
    global _worker
    _worker = load_implementation(label).Tokenizer.from_files(GPT2 / "vocab.json", GPT2 / "merges.txt", [EOT])


def _encode_docs(docs: list[str]) -> list[np.ndarray]:
    return [np.asarray(_worker.encode(doc), dtype=np.int32) for doc in docs]


def test_encode_all_cores_tiktoken(benchmark, tiktoken_gpt2, gpt2_text):
    benchmark.group = ENCODE_ALL
    docs = documents(gpt2_text)
    benchmark.pedantic(tiktoken_gpt2.encode_batch, (docs,), {"num_threads": CORES, "allowed_special": "all"}, rounds=3)
    benchmark.extra_info.update(impl=f"tiktoken {tiktoken.__version__}", bytes=len(gpt2_text.encode()))


def test_encode_all_cores_hf_tokenizers(benchmark, hf_gpt2, gpt2_text):
    benchmark.group = ENCODE_ALL
    docs = documents(gpt2_text)
    benchmark.pedantic(hf_gpt2.encode_batch, (docs,), rounds=3)
    benchmark.extra_info.update(impl=f"HF tokenizers {hf.__version__}", bytes=len(gpt2_text.encode()))
