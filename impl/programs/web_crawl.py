"""The raw crawl of ``web-data-run``: clean English pages mixed with the web's junk, as WARC files built from data
the kit ships (nothing downloads). Handout A4 §4 asks which data makes a better LM; a crawl whose every record is
labelled by what it is lets the run say what the filters removed and what each token stream is made of.

Every record is an HTTP 200 text/html response; its kind (``KINDS``) is in ``crawl.json`` by URL:

- ``clean``: chapters of the kit's prose corpus, train split (Austen, the KJV), as HTML pages
  (fixtures.web.crawls.prose_html), a seeded sample of ``CrawlPlan.clean`` of them.
- ``clean_copy``: some of those pages again on a mirror, byte for byte; ``clean_near``: again with one change
  (fixtures.web.debian.near_duplicate: a paragraph removed, or two swapped), as syndicated text is found.
- ``debian_en``, ``debian_other`` (10 other languages), ``debian_copy`` (exact and near copies): every response
  of fixtures/data/web/debian-docs.warc.gz, real documentation pages with their navigation.
- ``stub``: pages of site chrome with a title and a line of text (soft 404s, moved pages): few words.
- ``listing``: tag and search pages, each line a chapter's first words cut with "...": Gopher's ellipsis rule.
- ``archive``: calendar archive pages, mostly numbers: Gopher's alphabetic-word and word-length rules.

The default plan, 959 pages: by documents 63% clean, 13% copies of clean pages, 2% Debian English, 5.5% Debian in
other languages, 2% Debian copies, 16% stubs, listings and archives. By tokens (web-data-run's 4096-token BPE, 1.54M
in all) 45% clean, 17% clean copies, 4% Debian English, 24% other languages (that BPE spends about a token per
character of Chinese, Japanese and Korean), 6% Debian copies, 4% stubs, listings and archives. filter-web-data's
default pipeline keeps 619 documents (65%), 0.76M tokens, 92% of them the clean pages' text. That is a much
cleaner crawl than Common Crawl, where most pages fail language identification or quality rules: the English junk
here is little and easy (what a quality classifier is for is absent), and there is as much foreign text as the
Debian fixture holds.

The same seed gives the same bytes (fixtures/web/warc.py: fixed record ids and dates, gzip mtime 0).
"""

from __future__ import annotations

import functools
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from fixtures import FIXTURES_DIR

PROSE_TRAIN = FIXTURES_DIR / "data" / "corpus" / "prose_train.txt.xz"
DEBIAN_DOCS = FIXTURES_DIR / "data" / "web" / "debian-docs.warc.gz"
KINDS = ("clean", "clean_copy", "clean_near", "debian_en", "debian_other", "debian_copy", "stub", "listing",
         "archive")
CLEAN_SITE = "https://books.example.org/prose"
MIRROR_SITE = "https://mirror.example.net/library"
JUNK_SITE = "https://www.example.com"
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


@dataclass(frozen=True)
class CrawlPlan:
    """How many pages of each kind; the junk counts are shares of ``clean``."""

    clean: int = 600           # prose chapters (of 1228 in the train split)
    copy_share: float = 0.15   # clean pages found again on a mirror, byte for byte
    near_share: float = 0.05   # ... and with one change
    stub_share: float = 0.15   # short pages of chrome
    listing_share: float = 0.05
    archive_share: float = 0.05
    files: int = 4             # WARC files (filter-web-data's tasks: one per file)
    seed: int = 0

    def count(self, share: float) -> int:
        return round(self.clean * share)


@functools.cache
def prose_chapters() -> list[str]:
    from fixtures.web.crawls import prose_documents

    return prose_documents(PROSE_TRAIN)


def debian_pages() -> list[dict]:
    """Every response of debian-docs.warc.gz: url, HTML bytes, kind (from its sidecar: language, copies)."""
    import json

    from fastwarc.warc import ArchiveIterator, WarcRecordType

    rows = json.loads(DEBIAN_DOCS.with_name("debian-docs.expected.json").read_text(encoding="utf-8"))["records"]
    by_id = {row["id"]: row for row in rows}
    pages = []
    with open(DEBIAN_DOCS, "rb") as stream:
        for record in ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=True):
            row = by_id[record.record_id]
            copy = row.get("exact_duplicate_of") or row.get("near_duplicate_of")
            kind = "debian_copy" if copy else "debian_en" if row["lang"] == "en" else "debian_other"
            pages.append({"url": row["url"], "html": record.reader.read(), "kind": kind, "lang": row["lang"]})
    return pages


def stub_page(title: str, n: int) -> str:
    messages = ["This page has moved. Please update your bookmarks.", ("Sorry, this chapter is not available in "
                "your region."), "Sign in to continue reading.", "Page not found."]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n<body>\n'
            '<div class="nav"><a href="/">Home</a> | <a href="/books">Books</a> | <a href="/authors">Authors</a> | '
            f'<a href="/search">Search</a></div>\n<h1>{title}</h1>\n<p>{messages[n % len(messages)]}</p>\n'
            '<div class="footer">Privacy | Terms | Contact</div>\n</body></html>\n')


def listing_page(chapters: list[str], n: int) -> str:
    items = "".join(f'<li><a href="{CLEAN_SITE}/{n}-{i}.html">{" ".join(text.split()[:12])}...</a></li>\n'
                    for i, text in enumerate(chapters))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Results, page {n + 1}</title>'
            f"</head>\n<body>\n<h1>Search results, page {n + 1}</h1>\n<ul>\n{items}</ul>\n</body></html>\n")


def archive_page(year: int) -> str:
    months = "".join(f"<h2>{month} {year}</h2>\n<p>{' '.join(str(d) for d in range(1, 29 + (m % 3)))}</p>\n"
                     for m, month in enumerate(MONTHS))
    counts = " ".join(f"{y} ({(y * 7) % 40 + 1})" for y in range(year - 12, year + 1))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Archive {year}</title></head>\n'
            f"<body>\n<h1>Archive {year}</h1>\n{months}<p>{counts}</p>\n</body></html>\n")


def plan_pages(plan: CrawlPlan) -> list[dict]:
    """Every page of the crawl (url, html bytes, kind), in crawl order (shuffled with the seed)."""
    from fixtures.web.crawls import prose_html
    from fixtures.web.debian import long_paragraphs, near_duplicate

    rng = random.Random(plan.seed)
    chapters = prose_chapters()
    chosen = sorted(rng.sample(range(len(chapters)), plan.clean))
    pages = [{"url": f"{CLEAN_SITE}/train-{i:04d}.html", "html": prose_html(chapters[i]).encode(), "kind": "clean",
              "chapter": i} for i in chosen]
    clean = list(pages)
    for page in rng.sample(clean, plan.count(plan.copy_share)):
        pages.append({**page, "url": page["url"].replace(CLEAN_SITE, MIRROR_SITE), "kind": "clean_copy",
                      "chapter": None})
    changeable = [p for p in clean if len(long_paragraphs(p["html"].decode())) >= 3]
    for i, page in enumerate(rng.sample(changeable, min(len(changeable), plan.count(plan.near_share)))):
        change = ("paragraph-removed", "paragraphs-swapped")[i % 2]
        html = near_duplicate(page["html"].decode(), change).encode()
        pages.append({"url": page["url"].replace(CLEAN_SITE, MIRROR_SITE + "/v2"), "html": html,
                      "kind": "clean_near"})
    pages += debian_pages()
    for n in range(plan.count(plan.stub_share)):
        title = chapters[rng.randrange(len(chapters))].strip().splitlines()[0][:50]
        pages.append({"url": f"{JUNK_SITE}/read/{n:04d}", "html": stub_page(title, n).encode(), "kind": "stub"})
    for n in range(plan.count(plan.listing_share)):
        sample = [chapters[i] for i in rng.sample(range(len(chapters)), 20)]
        pages.append({"url": f"{JUNK_SITE}/search?page={n + 1}", "html": listing_page(sample, n).encode(),
                      "kind": "listing"})
    for n in range(plan.count(plan.archive_share)):
        year = 1990 + n
        pages.append({"url": f"{JUNK_SITE}/archive/{year}/{n}", "html": archive_page(year).encode(),
                      "kind": "archive"})
    rng.shuffle(pages)
    return pages


def write_crawl(plan: CrawlPlan, out: Path) -> dict:
    """The crawl as ``plan.files`` WARC files in ``out`` and its manifest (returned, and saved as crawl.json):
    the plan, each record's kind by URL, the prose chapters of the clean pages (indices in the train split)."""
    import json

    from fixtures.web.warc import WarcFile  # needs warcio
    from impl.programs.files import atomic_write, atomic_write_text

    pages = plan_pages(plan)
    out.mkdir(parents=True, exist_ok=True)
    info = {"software": "cs336-spec-kit web-data-run", "format": "WARC File Format 1.0",
            "description": "the kit's prose as HTML pages mixed with web junk (impl/programs/web_crawl.py)"}
    files = []
    for f in range(plan.files):
        warc = WarcFile(f"crawl-{f:02d}.warc.gz")
        warc.warcinfo(info)
        for page in pages[f :: plan.files]:
            warc.response(page["url"], page["html"], "text/html; charset=utf-8")
        with atomic_write(out / warc.name) as file:
            file.write(warc.data())
        files.append(warc.name)
    manifest = {"plan": asdict(plan), "files": files, "kinds": {p["url"]: p["kind"] for p in pages},
                "clean_chapters": sorted(p["chapter"] for p in pages if p["kind"] == "clean"),
                "pages": {kind: sum(p["kind"] == kind for p in pages) for kind in KINDS}}
    atomic_write_text(out / "crawl.json", json.dumps(manifest, indent=1) + "\n")
    return manifest
