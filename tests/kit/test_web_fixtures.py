"""The committed web fixtures (fixtures/data/web/, built by ``python -m fixtures.web``)
are whole: every file the README and the indexes name exists, every sidecar parses, and fastwarc
reads from each WARC the records its sidecar states. No network, no rebuild."""

import json
import re

import pytest
from fastwarc.warc import ArchiveIterator

from fixtures import FIXTURES_DIR

DATA = FIXTURES_DIR / "data"
WEB = DATA / "web"
SIDECARS = sorted(WEB.glob("*.expected.json"))


def test_every_file_the_readme_and_the_indexes_name_exists():
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(web/[^`*]+)`", readme))
    assert len(named) > 10, "the README's web/ section names its files as `web/...`"
    for folder, index in [("html", "encodings.json"), ("near_duplicates", "groups.json"), ("langid", "sources.json")]:
        listed = json.loads((WEB / folder / index).read_text(encoding="utf-8"))
        named |= {f"web/{folder}/{name}" for name in listed.get("documents", listed)}
    missing = sorted(name for name in named if not (DATA / name).exists())
    assert not missing


def test_every_json_file_parses():
    for path in WEB.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))
    assert len(SIDECARS) == 6


def test_transcoded_pages_decode_with_the_encoding_their_index_states():
    for name, entry in json.loads((WEB / "html" / "encodings.json").read_text(encoding="utf-8")).items():
        data = (WEB / "html" / name).read_bytes()
        if "invalid_utf8_offsets" in entry:
            with pytest.raises(UnicodeDecodeError) as error:
                data.decode("utf-8")
            assert error.value.start == entry["invalid_utf8_offsets"][0]
        else:
            data.decode(entry["encoding"])


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda path: path.name)
def test_fastwarc_reads_the_records_the_sidecar_states(sidecar):
    expected = json.loads(sidecar.read_text(encoding="utf-8"))
    read, error = [], None
    with open(WEB / expected["file"], "rb") as stream:
        try:
            for record in ArchiveIterator(stream):
                read.append((record.headers.get("WARC-Record-ID"), record.headers.get("WARC-Target-URI")))
        except Exception as exc:  # noqa: BLE001 - some files are built to stop the reader
            error = type(exc).__name__
    stated = expected["readers"]["fastwarc"]
    assert len(read) == stated["records"]
    assert error == (stated["error"].split(":")[0] if stated["error"] else None)
    assert read == [(row["id"], row["url"]) for row in expected["records"][: len(read)]]
