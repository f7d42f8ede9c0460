"""``fetch-corpus`` against a local HTTP server standing in for the Hugging Face hub (no internet)."""

from __future__ import annotations

import gzip
import http.server
import threading
from functools import partial

import pytest

from impl.programs import corpora

TEXT = "Once upon a time there was a tiny corpus.<|endoftext|>The end.\n" * 200


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: any free port
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_downloads_both_splits_and_gunzips(server, tmp_path, monkeypatch, capsys):
    served, base = server
    (served / "train.txt").write_text(TEXT)
    (served / "valid.txt.gz").write_bytes(gzip.compress(TEXT[:500].encode()))
    monkeypatch.setitem(corpora.CORPORA, "tinystories", {"train": f"{base}/train.txt", "valid": f"{base}/valid.txt.gz"})
    out = tmp_path / "corpus"
    assert corpora.main(["tinystories", "--out", str(out)]) == 0
    assert (out / "train.txt").read_text() == TEXT and (out / "valid.txt").read_text() == TEXT[:500]
    assert corpora.main(["tinystories", "--out", str(out)]) == 0  # a second call skips what exists
    assert "exists; skipped" in capsys.readouterr().out


@pytest.mark.parametrize("problem", ["missing", "truncated gzip"])
def test_a_failed_download_is_named_and_leaves_no_file(server, tmp_path, monkeypatch, capsys, problem):
    served, base = server
    if problem == "truncated gzip":
        (served / "train.txt.gz").write_bytes(gzip.compress(TEXT.encode())[:-40])
    monkeypatch.setitem(corpora.CORPORA, "owt", {"train": f"{base}/train.txt.gz"})
    out = tmp_path / "corpus"
    assert corpora.main(["owt", "--out", str(out)]) == 1
    assert f"could not download {base}/train.txt.gz" in capsys.readouterr().err
    assert list(out.iterdir()) == []  # neither a partial file nor a temp file
