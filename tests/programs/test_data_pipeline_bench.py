"""The whole-pipeline benchmark (bench/data/pipeline.py) without datatrove: on the fixtures' small crawl, its table
has the peer rows saying how to set datatrove up and our row with figures; the benchmark crawl's builder
(bench/data/crawl.py) writes the same bytes twice, with 10% exact and 10% near copies. No wall-clock time is
asserted, and nothing is downloaded (the crawl is built from fixture pages standing in for the packages)."""

from __future__ import annotations

import json

from bench.common import parse_tables
from bench.data import crawl, pipeline
from fixtures import FIXTURES_DIR

WEB = FIXTURES_DIR / "data" / "web"


def test_without_datatrove_the_peer_rows_say_how_to_set_it_up(tmp_path):
    out = tmp_path / "pipeline.md"
    missing = tmp_path / "no-venv" / "bin" / "python"
    pipeline.main(["--inputs", str(WEB / "debian-docs.warc.gz"), "--only", "filter", "--datatrove-python",
                   str(missing), "--out", str(out)])
    text = out.read_text()
    ((header, rows),) = parse_tables(text)
    assert header[:3] == ["pipeline", "documents/s", "HTML MB/s"]
    assert [row[0] for row in rows] == ["datatrove, resiliparse extractor (peer)",
                                        "datatrove, Trafilatura extractor (its default)", "ours (filter-web-data)"]
    for row in rows[:2]:
        assert f"--datatrove-python {missing} does not exist" in row[1] and "nox -s bench_data_pipeline" in row[1]
    responses = sum(r["type"] == "response" for r in json.loads((WEB / "debian-docs.expected.json").read_text())
                    ["records"])
    assert f"{responses} HTML documents" in text
    assert rows[2][1].endswith("docs/s") and rows[2][2].endswith("MB/s") and rows[2][3] == ""
    assert "kept" in rows[2][4] and "ours dropped language" in text


def test_a_missing_python_is_named_and_a_broken_one_too(tmp_path):
    assert "no --datatrove-python" in pipeline.datatrove_problem(None)
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named datatrove' >&2\nexit 1\n")
    fake.chmod(0o755)
    assert "cannot import it (ModuleNotFoundError: No module named datatrove" in pipeline.datatrove_problem(str(fake))


def test_the_crawl_is_the_same_bytes_twice_with_a_tenth_of_each_copy(tmp_path, monkeypatch):
    pages = sorted((WEB / "html").glob("*.utf-8.html"))
    roots = {}
    for site in crawl.SITES:  # fixture pages in place of the packages' HTML
        roots[site.package.name] = tmp_path / "packages" / site.package.name
        folder = roots[site.package.name] / site.folder
        folder.mkdir(parents=True)
        for page in pages:
            (folder / page.name).write_bytes(page.read_bytes())
    monkeypatch.setattr(crawl, "fetch", lambda packages, cache, given=None: roots)
    built = [crawl.build(tmp_path / f"cache{i}", progress=False) for i in range(2)]
    manifests = [json.loads((b / "crawl.json").read_text()) for b in built]
    assert manifests[0]["files"] == manifests[1]["files"]
    assert all((built[0] / name).read_bytes() == (built[1] / name).read_bytes() for name in crawl.FILES)
    originals = len(pages) * len(crawl.SITES)
    assert manifests[0]["documents"] == originals + 2 * (originals // 10)
    assert manifests[0]["exact_duplicates"] == manifests[0]["near_duplicates"] == originals // 10
    documents, _ = pipeline.html_input([built[0] / name for name in crawl.FILES])
    assert documents == manifests[0]["documents"]
