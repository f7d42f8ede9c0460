"""Documents read out of the pinned packages (packages.py) and the kit's embedded prose corpus.

Each loader returns ``Doc``s. ``group`` is the unit of the train / held-out split (an article, a review, a fortune,
an HTML page): every example cut from one group lands on the same side, so that held-out figures are never measured
on text the model saw. Group names are stable: the hand-labelled gold set (gold_harm.tsv) refers to them.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import pickle
import random
import re
import tarfile
import xml.etree.ElementTree as ET
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from impl.data.extract import extract_text_from_html_bytes
from impl.programs.corpora import EMBEDDED, EOT


@dataclass(frozen=True)
class Doc:
    source: str  # the loader's name for where it comes from: "wikipedia", "tweets" ...
    group: str
    text: str


def word_count(text: str) -> int:
    return len(text.split())


def chunk_paragraphs(text: str, rng: random.Random, low: int = 80, high: int = 400) -> list[str]:
    """A long text cut into page-sized chunks at paragraph breaks, each of ``low`` to about ``high`` words (the
    length of a web page's main text), a short tail joined to none."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    chunks, current, words, target = [], [], 0, rng.randint(low, high)
    for paragraph in paragraphs:
        current.append(paragraph)
        words += word_count(paragraph)
        if words >= target:
            chunks.append("\n\n".join(current))
            current, words, target = [], 0, rng.randint(low, high)
    if current and (words >= low // 2 or not chunks):
        chunks.append("\n\n".join(current))
    return chunks


def gensim_data(roots: dict[str, Path]) -> Path:
    return roots["gensim"] / "gensim" / "test" / "test_data"


# --------------------------------------------------------------------------------------------- reference-grade text


def wikipedia(roots: dict[str, Path], rng: random.Random) -> list[Doc]:
    """The English Wikipedia articles of gensim's dump excerpt as plain text (markup stripped), in page-sized chunks."""
    import mwparserfromhell

    path = gensim_data(roots) / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    articles = []
    with bz2.open(path) as file:
        for _, element in ET.iterparse(file):
            if element.tag.endswith("}page"):
                articles.append((element.find(".//{*}title").text, element.find(".//{*}text").text or ""))
                element.clear()
    docs = []
    for title, text in articles:
        if text.lstrip().upper().startswith("#REDIRECT") or len(text) < 2000:
            continue
        plain = mwparserfromhell.parse(text).strip_code(normalize=True, collapse=True)
        # What strip_code leaves of images, categories and interlanguage links.
        lines = [line for line in plain.splitlines()
                 if not re.match(r"^\s*(thumb\||Category:|File:|Image:|[a-z\-]{2,12}:)", line)]
        for chunk in chunk_paragraphs(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)), rng, 120, 600):
            if word_count(chunk) >= 60:
                docs.append(Doc("wikipedia", f"wiki:{title}", chunk))
    return docs


def lee_news(roots: dict[str, Path]) -> list[Doc]:
    """The Lee corpus: 300 Australian news stories, one a line."""
    lines = (gensim_data(roots) / "lee_background.cor").read_text(encoding="latin-1").splitlines()
    return [Doc("lee_news", f"lee:{i}", line.strip()) for i, line in enumerate(lines) if line.strip()]


@functools.cache
def vader_file(vader_root: Path, name: str) -> list[tuple[str, float, str]]:
    """(id, sentiment, text) rows of one of the ICWSM-14 files, which the sdist keeps in a tarball of its own."""
    with tarfile.open(vader_root / "vaderSentiment-3.3.2" / "additional_resources" / "hutto_ICWSM_2014.tar.gz") as tar:
        member = next(m for m in tar if m.name.endswith(f"/{name}_GroundTruth.txt"))
        data = tar.extractfile(member).read().decode("utf-8", errors="replace")
    rows = []
    for line in data.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            rows.append((parts[0], float(parts[1]), "\t".join(parts[2:]).strip()))
    return rows


def vader_documents(roots: dict[str, Path], name: str, source: str) -> list[Doc]:
    """Snippets joined back into their documents (ids are ``<document>_<sentence>``)."""
    documents: dict[str, list[str]] = defaultdict(list)
    for sentence_id, _, text in vader_file(roots["vaderSentiment"], name):
        documents[sentence_id.split("_")[0]].append(text)
    return [Doc(source, f"{source}:{key}", " ".join(texts)) for key, texts in documents.items()]


def nyt_editorials(roots: dict[str, Path]) -> list[Doc]:
    return vader_documents(roots, "nytEditorialSnippets", "nyt")


def debian_docs(roots: dict[str, Path], rng: random.Random) -> list[Doc]:
    """The Debian Reference (HTML through the kit's extraction), the Debian Policy, constitution, social contract and
    manifesto, the GNU standards, in page-sized chunks; eight consecutive chunks make one group."""
    docs = []
    reference = roots["debian-reference-en"] / "usr" / "share" / "debian-reference"
    for page in sorted(reference.glob("ch*.en.html")):
        for chunk in chunk_paragraphs(extract_text_from_html_bytes(page.read_bytes()), rng, 120, 600):
            docs.append(Doc("debian_reference", f"debref:{page.name}:{len(docs) // 8}", chunk))
    texts = [(roots["debian-policy"], "debian-policy/policy.txt.gz"),
             (roots["doc-debian"], "debian/constitution.txt.gz"),
             (roots["doc-debian"], "debian/social-contract.txt.gz"),
             (roots["doc-debian"], "debian/debian-manifesto.gz"),
             (roots["gnu-standards"], "gnu-standards/standards.text.gz"),
             (roots["gnu-standards"], "gnu-standards/maintain.text.gz")]
    for root, name in texts:
        with gzip.open(root / "usr" / "share" / "doc" / name, "rt", errors="replace") as file:
            text = file.read()
        for i, chunk in enumerate(chunk_paragraphs(text, rng, 120, 600)):
            docs.append(Doc("debian_text", f"debtext:{name}:{i // 8}", chunk))
    return docs


NAVIGATION_PAGES = ("genindex", "py-modindex", "contents")
SKIPPED_PAGES = ("_", "c-api", "distutils", "whatsnew/changelog", "glossary", "search", "bugs", "copyright", "license",
                 "about", "download")


def python_docs(roots: dict[str, Path], rng: random.Random) -> tuple[list[Doc], list[Doc]]:
    """The Python 3.11 documentation as a crawler sees it (extracted HTML, navigation included): (content pages,
    index pages). The index pages are real link lists from the same site: negatives that share its vocabulary."""
    base = roots["python3.11-doc"] / "usr" / "share" / "doc" / "python3.11" / "html"
    content, navigation = [], []
    for page in sorted(base.glob("**/*.html")):
        relative = page.relative_to(base).as_posix()
        if relative.startswith(NAVIGATION_PAGES):
            text = extract_text_from_html_bytes(page.read_bytes()).replace("\n", "\n\n")  # a chunk may end at any line
            for i, chunk in enumerate(chunk_paragraphs(text, rng, 100, 500)):
                navigation.append(Doc("python_index", f"pyidx:{relative}:{i}", chunk))
        elif not relative.startswith(SKIPPED_PAGES):
            for chunk in chunk_paragraphs(extract_text_from_html_bytes(page.read_bytes()), rng, 150, 700):
                content.append(Doc("python_docs", f"pydoc:{relative}", chunk))
    return content, navigation


def prose(rng: random.Random, count: int = 400) -> list[Doc]:
    """The first page of ``count`` chapters of the kit's embedded corpus (Austen, the King James Bible)."""
    with lzma.open(EMBEDDED["train"], "rt", encoding="utf-8") as file:
        chapters = [c.strip() for c in file.read().split(EOT) if c.strip()]
    rng.shuffle(chapters)
    return [Doc("prose", f"prose:{i}", chunk_paragraphs(c, rng, 150, 600)[0]) for i, c in enumerate(chapters[:count])]


# --------------------------------------------------------------------------------------------- informal text


def tweets(roots: dict[str, Path]) -> list[Doc]:
    return [Doc("tweets", f"tweet:{sid}", text) for sid, _, text in vader_file(roots["vaderSentiment"], "tweets")]


def movie_snippets(roots: dict[str, Path]) -> list[Doc]:
    return [Doc("movie", f"movie:{sid}", text)
            for sid, _, text in vader_file(roots["vaderSentiment"], "movieReviewSnippets")]


def amazon_reviews(roots: dict[str, Path]) -> list[Doc]:
    return vader_documents(roots, "amazonReviewSnippets", "amazon")


FORTUNE_PACKAGES = ("fortunes", "fortunes-min", "fortunes-bofh-excuses")


def fortunes(roots: dict[str, Path]) -> list[Doc]:
    """Every fortune cookie (quips, jokes, quotations) of the three packages; the .dat indexes are skipped."""
    files = sorted((path for package in FORTUNE_PACKAGES
                    for path in (roots[package] / "usr" / "share" / "games" / "fortunes").glob("*")
                    if path.is_file() and "." not in path.name), key=lambda path: path.name)
    docs = []
    for path in files:
        for i, entry in enumerate(path.read_text(encoding="utf-8", errors="replace").split("\n%\n")):
            entry = entry.strip().strip("%").strip()
            if entry:
                docs.append(Doc("fortunes", f"fortune:{path.name}:{i}", entry))
    return docs


class _BunchAsDict(pickle.Unpickler):
    """gensim's pickle of scikit-learn's 20 newsgroups Bunch, read without scikit-learn (a Bunch is a dict)."""

    def find_class(self, module: str, name: str):
        if name == "Bunch":
            return dict
        if module.split(".")[0] not in ("builtins", "copy_reg", "copyreg", "numpy", "__builtin__"):
            raise pickle.UnpicklingError(f"unexpected class {module}.{name} in the newsgroups pickle")
        return super().find_class(module, name)


def newsgroups(roots: dict[str, Path]) -> list[Doc]:
    """200 Usenet posts (alt.atheism, sci.space) with their headers."""
    raw = zlib.decompress((gensim_data(roots) / "mini_newsgroup").read_bytes())
    data = _BunchAsDict(io.BytesIO(raw), encoding="latin1").load()
    return [Doc("newsgroups", f"ng:{i}", text) for i, text in enumerate(data["data"])]
