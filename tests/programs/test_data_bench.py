"""The web-data benchmark (bench/data/benchmark.py) on a small corpus: fair peers and an implementation's rows.

The MinHash peer must be the same computation as ours (datasketch's MinHash and LSH with the same bands, the same
shingles and Jaccard check): both remove the same documents. An implementation under test (--impl) gets its rows;
what it lacks reads missing. No wall-clock time is asserted.
"""

from __future__ import annotations

from bench.common import parse_tables
from bench.data import benchmark


def test_tables_and_peers_agree(tmp_path):
    out = tmp_path / "data.md"
    benchmark.main(["--chapters", "40", "--repeat", "1", "--out", str(out),
                    "--impl", "adapters:tests/kit/adapters_reference.py"])
    minhash, extract, language = parse_tables(out.read_text())
    rows = {row[0]: row for row in minhash[1]}
    removed = {row[3] for row in rows.values()}
    assert len(rows) == 3 and removed == {"8 removed"}, rows  # 4 exact + 4 near copies of 40 chapters
    for header, table_rows in (extract, language):
        assert [row[0].split(",")[0] for row in table_rows][1:] == ["ours", "yours"], table_rows
        assert all(row[2].endswith("x") for row in table_rows)


def test_missing_component_is_a_row(tmp_path):
    out = tmp_path / "data.md"
    benchmark.main(["--only", "language", "--repeat", "1", "--out", str(out), "--impl", "tests.kit.toy_partial"])
    ((_, rows),) = parse_tables(out.read_text())
    assert "missing" in rows[-1][1], rows
