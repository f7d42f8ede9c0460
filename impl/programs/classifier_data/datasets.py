"""The labelled examples of each task, split into training and held-out sets by document.

quality (A4 §2.7): "wiki" is reference-grade text (Wikipedia, news and editorials, technical documentation, books),
some in a thin navigation frame and some cut to their first paragraph, as cited pages are; "cc" is low-quality crawl
text: real informal text (tweet feeds, snippet pages, quote pages, reviews, Usenet posts, documentation index pages),
generated shops, SEO spam, forms and link lists (pages.py), and good documents spoiled (a spoiled document follows
its original to the same side of the split).

nsfw, toxic (A4 §2.5): real texts with silver labels (lexicon.py and the teacher), generated talk-page comments
(comments.py), and real texts with a generated remark added; the hand-labelled gold set is never trained on.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

from impl.programs.classifier_data import comments, pages, sources
from impl.programs.classifier_data.lexicon import silver_labels
from impl.programs.classifier_data.sources import Doc
from impl.programs.classifier_data.teacher import Teacher
from impl.programs.cli import UserError

HELD_OUT_FRACTION = 0.2
GOLD = Path(__file__).with_name("gold_harm.tsv")
QUALITY_PACKAGES = ["gensim", "vaderSentiment", "fortunes", "fortunes-min", "fortunes-bofh-excuses",
                    "debian-reference-en", "debian-policy", "doc-debian", "gnu-standards", "python3.11-doc"]
HARM_PACKAGES = [*QUALITY_PACKAGES, "alt-profanity-check"]


@dataclass(frozen=True)
class Example:
    label: str  # the spec's label: "wiki" / "cc", "nsfw" / "non-nsfw", "toxic" / "non-toxic"
    source: str
    group: str
    text: str

    @property
    def held_out(self) -> bool:
        return held_out(self.group)


def held_out(group: str) -> bool:
    """A fixed fifth of the groups, by a hash of the name (stable across runs, machines and data sizes)."""
    return int(hashlib.sha1(f"v1{group}".encode()).hexdigest()[:8], 16) % 10_000 < HELD_OUT_FRACTION * 10_000


# --------------------------------------------------------------------------------------------- quality


def pages_of(docs: list[Doc], rng: random.Random, low: int, high: int, source: str) -> list[Doc]:
    """Short texts shuffled and joined ``low`` to ``high`` to a page (a feed, a quote page), one group each."""
    docs = docs[:]
    rng.shuffle(docs)
    out, i = [], 0
    while i < len(docs):
        size = rng.randint(low, high)
        out.append(Doc(source, f"{source}:page{len(out)}", "\n".join(d.text for d in docs[i:i + size])))
        i += size
    return out


def quality_examples(roots: dict[str, Path], seed: int = 0) -> list[Example]:
    """The quality task's examples (this module's docstring says what each class holds)."""
    rng = random.Random(seed)
    python_pages, python_index = sources.python_docs(roots, rng)
    originals = (sources.wikipedia(roots, rng) + sources.nyt_editorials(roots) + sources.lee_news(roots)
                 + sources.debian_docs(roots, rng) + rng.sample(python_pages, 1000) + sources.prose(rng))
    informal = (pages_of(sources.tweets(roots), rng, 3, 25, "tweet_feed")
                + pages_of(sources.movie_snippets(roots), rng, 3, 15, "movie_page")
                + rng.sample(pages_of(sources.fortunes(roots), rng, 3, 12, "quote_page"), 600)
                + sources.amazon_reviews(roots) + sources.newsgroups(roots) + python_index)
    examples = []
    for doc in originals:
        examples.append(Example("wiki", doc.source, doc.group, doc.text))
        if rng.random() < 0.25:  # a thin frame around a long good text leaves a good page
            framed = pages.navigation(rng) + "\n" + doc.text + "\n" + pages.footer(rng, ["news"], 2)
            examples.append(Example("wiki", doc.source + "+nav", doc.group, framed))
        if rng.random() < 0.15:
            first = doc.text.strip().split("\n\n")[0]
            if len(first.split()) >= 40:
                examples.append(Example("wiki", doc.source + "_lead", doc.group, first))
    examples += [Example("cc", doc.source, doc.group, doc.text) for doc in informal]
    for side in (False, True):  # generated from each side's own words, so that no held-out word leaks into training
        examples += generated_low_quality(rng, [d for d in originals if held_out(d.group) == side],
                                          [d for d in informal if held_out(d.group) == side], side)
    return examples


def generated_low_quality(rng: random.Random, originals: list[Doc], informal: list[Doc], side: bool) -> list[Example]:
    """The generated and spoiled "cc" pages of one side of the split, made from that side's documents only."""
    words = [w for doc in originals[:400] for w in re.findall(r"[A-Za-z]{3,}", doc.text)][:60_000]
    titles = sorted({doc.group.split(":", 1)[1] for doc in originals if doc.source == "wikipedia"}) or ["Main page"]
    snippets = [doc.text.split("\n")[0] for doc in informal if doc.source in ("tweet_feed", "movie_page")]
    scale = 0.25 if side else 1  # fewer generated pages among the held-out: they are easy, real pages matter more
    makers = [("shop", pages.shop_page, 600), ("seo", pages.seo_page, 600), ("form", pages.form_page, 700),
              ("linklist", lambda r, w: pages.link_list_page(r, w, titles), 400),
              ("forum", lambda r, w: pages.forum_page(r, w, snippets), 400)]
    out = []
    for kind, make, count in makers:
        # The group names the side: the hash split must put each generated page where it was generated for.
        out += [Example("cc", f"gen_{kind}", group, make(rng, words))
                for group in side_groups(f"gen:{kind}", int(count * scale), side)]
    for doc in originals:
        r = rng.random()
        if r < 0.45:
            out.append(Example("cc", f"spoiled_boilerplate<{doc.source}", doc.group,
                               pages.lost_in_boilerplate(rng, doc.text, words)))
        elif r < 0.7 and len(pages.sentences(doc.text)) >= 3:
            out.append(Example("cc", f"spoiled_stuffed<{doc.source}", doc.group,
                               pages.keyword_stuffed(rng, doc.text, words)))
    texts = [doc.text for doc in originals]
    out += [Example("cc", "spoiled_teaser", group, pages.teaser_index(rng, texts))
            for group in side_groups("teaser", int(300 * scale), side)]
    return out


def side_groups(prefix: str, count: int, side: bool) -> list[str]:
    """``count`` group names that the split puts on ``side`` (held out or not)."""
    names, i = [], 0
    while len(names) < count:
        if held_out(f"{prefix}:{i}") == side:
            names.append(f"{prefix}:{i}")
        i += 1
    return names


# --------------------------------------------------------------------------------------------- nsfw and toxic


@dataclass(frozen=True)
class HarmExample:
    source: str
    group: str
    text: str
    nsfw: bool
    toxic: bool
    unsure: bool = False  # profanity without a target: out of the toxic task (lexicon.silver_labels)


def gold_labels() -> dict[str, tuple[bool, bool]]:
    """group -> (nsfw, toxic) of the hand-labelled gold set."""
    lines = [line for line in GOLD.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    rows = [line.split("\t") for line in lines[1:]]
    return {group: (nsfw == "1", toxic == "1") for group, _, nsfw, toxic in rows}


def harm_examples(roots: dict[str, Path], seed: int = 0) -> tuple[list[HarmExample], list[HarmExample]]:
    """(examples, gold): the silver-labelled and generated examples, and the gold set with its hand labels.

    A clean real text (no silver label) may come back with a generated remark added (comments.inject): injected
    examples keep the real text's group, so that they stay on its side of the split.
    """
    rng = random.Random(seed)
    teacher = Teacher(roots["alt-profanity-check"])
    informal = (sources.tweets(roots) + sources.movie_snippets(roots) + sources.fortunes(roots)
                + sources.amazon_reviews(roots) + sources.newsgroups(roots))
    formal = (sources.wikipedia(roots, rng) + sources.nyt_editorials(roots) + sources.lee_news(roots)
              + rng.sample(sources.debian_docs(roots, rng), 400) + rng.sample(sources.python_docs(roots, rng)[0], 400))
    labels = gold_labels()
    gold = [HarmExample("gold", doc.group, doc.text, *labels[doc.group]) for doc in informal if doc.group in labels]
    if len(gold) != len(labels):
        missing = sorted(set(labels) - {example.group for example in gold})[:5]
        raise ValueError(f"gold set: {len(labels) - len(gold)} groups not found in the sources, e.g. {missing}")
    real = [doc for doc in informal + formal if doc.group not in labels]
    scores = teacher.scores([doc.text for doc in real])
    examples = [HarmExample(doc.source, doc.group, doc.text, *silver_labels(doc.text, score))
                for doc, score in zip(real, scores)]
    examples += [HarmExample("synthetic", f"syn:{c.family}:{i}", c.text, c.nsfw, c.toxic)
                 for i, c in enumerate(comments.generate(600))]
    clean = [(e.group, e.text) for e in examples if e.source in ("tweets", "movie", "fortunes")
             and not (e.nsfw or e.toxic or e.unsure) and len(e.text) < 400]
    examples += [HarmExample("injected", i.group, i.text, i.nsfw, i.toxic) for i in comments.inject(clean, 4000)]
    return examples, gold


def harm_task_examples(task: str, examples: list[HarmExample]) -> list[Example]:
    """The harm examples labelled for ``task`` ("nsfw" or "toxic"); the toxic task leaves the unsure ones out."""
    if task == "nsfw":
        return [Example("nsfw" if e.nsfw else "non-nsfw", e.source, e.group, e.text) for e in examples]
    return [Example("toxic" if e.toxic else "non-toxic", e.source, e.group, e.text) for e in examples if not e.unsure]


# --------------------------------------------------------------------------------------------- your own data


def directory_examples(directory: Path, labels: tuple[str, str]) -> list[Example]:
    """``directory/<label>/*.txt``, one UTF-8 document a file, for each of the task's two labels; the file's path is
    its group."""
    return [Example(label, "data", f"{label}/{path.name}", read_text(path))
            for label in labels for path in sorted((directory / label).glob("*.txt"))]


def read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text: byte {data[error.start]:#04x} at offset {error.start}") from None
