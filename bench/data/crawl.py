"""The pipeline benchmark's crawl: 6,001 real HTML pages of Debian documentation in two WARC files.

    python -m bench.data.crawl                # build it (once; later calls print where it is)

The pages are every HTML file of three pinned Debian bookworm packages (fixtures/packages.py downloads them with
``apt-get download`` and checks their sha256): the Python 3.11 documentation (530 pages, English), the PostgreSQL
15 manual (1,169, English) and the Debian Administrator's Handbook (3,302: 127 chapters in 26 languages): 5,001
pages, 134 MB. 10% of them come again under another URL with the same bytes (exact duplicates) and another 10% with
one change a crawl finds between copies (fixtures/web/debian.py's ``near_duplicate``: a mirror's header and footer,
two paragraphs swapped, a paragraph removed). Shuffled with a fixed seed and split in two ``.warc.gz`` files written
by the fixtures' deterministic WARC writer (fixtures/web/warc.py), each response with the
WARC-Identified-Payload-Type header Common Crawl gives: the same bytes on every build.

Built into ``$CS336_CACHE/bench-crawl`` (default ``~/.cache/cs336-kit``) on first use, with ``crawl.json`` beside
the WARC files: counts, bytes, each file's sha256, and the duplicates (URL -> the URL it copies). Two pins are
bookworm security updates, which the mirrors drop once a newer one comes: then give the .debs with ``--debs`` (or
in ``bench-crawl/downloads``), or move the pins and ``VERSION`` on.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from fixtures import file_sha256
from fixtures.packages import Package, deb, fetch
from fixtures.web.debian import long_paragraphs, near_duplicate

VERSION = 1  # of the crawl's recipe: a change here builds a new folder
CACHE = Path(os.environ.get("CS336_CACHE", Path.home() / ".cache" / "cs336-kit")) / "bench-crawl"
FILES = ("debian-docs-0.warc.gz", "debian-docs-1.warc.gz")
NEAR_CHANGES = ("site-chrome", "paragraphs-swapped", "paragraph-removed")


@dataclass(frozen=True)
class Site:
    package: Package
    folder: str  # where the package holds the HTML
    url: str  # where the same pages are published


SITES = [
    Site(deb("python3.11-doc", "3.11.2-6+deb12u9", "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be",
             "PSF-2.0", "the Python 3.11 documentation (HTML)"),
         "usr/share/doc/python3.11/html", "https://docs.python.org/3.11"),
    Site(deb("postgresql-doc-15", "15.20-0+deb12u1", "4c44bf2c599f208b3f46454a6cf7a72e25ec46ff74d37b59dd31ad76b00eebb7",
             "PostgreSQL", "the PostgreSQL 15 manual (HTML)"),
         "usr/share/doc/postgresql-doc-15/html", "https://www.postgresql.org/docs/15"),
    Site(deb("debian-handbook", "11.20220922", "3d5dbeac1f1afc9c094eab9d0f701f6ecff99c4927d5a4794cf6c85678134faa",
             "GPL-2+ / CC-BY-SA-3.0", "The Debian Administrator's Handbook in 26 languages (HTML)"),
         "usr/share/doc/debian-handbook/html", "https://debian-handbook.info/browse"),
]


def crawl_dir(cache: Path = CACHE) -> Path:
    return cache / f"crawl-v{VERSION}"


def pages(roots: dict[str, Path]) -> list[tuple[str, Path]]:
    """(URL, file) of every HTML page of the packages, in a fixed order."""
    found = []
    for site in SITES:
        folder = roots[site.package.name] / site.folder
        found += [(f"{site.url}/{path.relative_to(folder).as_posix()}", path)
                  for path in sorted(folder.rglob("*.html"))]
    return found


def plan(roots: dict[str, Path]) -> list[dict]:
    """The responses in crawl order: every page once, 10% again as they are, 10% again with one change."""
    originals = [{"url": url, "path": path, "change": None} for url, path in pages(roots)]
    rng = random.Random(6001)
    tenth = len(originals) // 10
    exact = rng.sample(originals, tenth)
    # The paragraph changes need three long paragraphs; a mirror's chrome fits any page.
    chosen = set(map(id, exact))
    rest = [item for item in originals if id(item) not in chosen]
    near = rng.sample(rest, tenth)
    copies = []
    for i, item in enumerate(exact):  # the same bytes over http://, or from a mirror
        other = "http://" if i % 2 else "https://mirror.example.net/"
        url = item["url"].replace("https://", other)
        copies.append({**item, "url": url, "copy_of": item["url"]})
    for i, item in enumerate(near):
        change = NEAR_CHANGES[i % 3]
        if change != "site-chrome" and len(long_paragraphs(item["path"].read_text(encoding="utf-8"))) < 3:
            change = "site-chrome"
        copies.append({**item, "url": item["url"].replace("https://", "https://docs.example.com/"), "change": change,
                       "copy_of": item["url"]})
    responses = originals + copies
    rng.shuffle(responses)
    return responses


def build(cache: Path = CACHE, debs: Path | None = None, progress: bool = True) -> Path:
    """The crawl's folder, built first if it is not there."""
    from tqdm import tqdm

    from fixtures.web.warc import WarcFile

    out = crawl_dir(cache)
    if (out / "crawl.json").is_file():
        return out
    roots = fetch([site.package for site in SITES], cache, given=debs)
    responses = plan(roots)
    half = (len(responses) + 1) // 2
    temp = out.with_name(out.name + ".partial")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    info = {"software": "cs336-spec-kit bench/data/crawl.py", "format": "WARC File Format 1.0",
            "description": "Debian documentation packages as a crawl with exact and near duplicates"}
    html_bytes, files = 0, {}
    with tqdm(total=len(responses), desc="building the benchmark crawl", unit="page", disable=not progress) as bar:
        for k, name in enumerate(FILES):
            warc = WarcFile(name)
            warc.warcinfo(info)
            for item in responses[k * half:(k + 1) * half]:
                body = item["path"].read_bytes()
                if item["change"]:
                    body = near_duplicate(body.decode("utf-8"), item["change"]).encode("utf-8")
                warc.response(item["url"], body, "text/html; charset=utf-8", payload_type="text/html")
                html_bytes += len(body)
                bar.update(1)
            (temp / name).write_bytes(warc.data())
            files[name] = {"bytes": (temp / name).stat().st_size, "sha256": file_sha256(temp / name),
                           "responses": len(warc.rows) - 1}
    manifest = {"version": VERSION, "documents": len(responses), "html_bytes": html_bytes, "files": files,
                "packages": [vars(site.package) for site in SITES],
                "exact_duplicates": sum(1 for r in responses if r.get("copy_of") and not r["change"]),
                "near_duplicates": sum(1 for r in responses if r["change"]),
                "copies": {r["url"]: {"of": r["copy_of"], "change": r["change"]}
                           for r in responses if r.get("copy_of")}}
    (temp / "crawl.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    temp.rename(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the packages and the crawl are kept")
    parser.add_argument("--debs", type=Path, help="a folder holding the pinned .debs (skips apt-get download)")
    args = parser.parse_args(argv)
    out = build(args.cache, args.debs)
    manifest = json.loads((out / "crawl.json").read_text(encoding="utf-8"))
    print(f"{out}: {manifest['documents']} pages, {manifest['html_bytes'] / 1e6:.1f} MB of HTML "
          f"({manifest['exact_duplicates']} exact and {manifest['near_duplicates']} near duplicates) in "
          f"{', '.join(FILES)}")


if __name__ == "__main__":
    main()
