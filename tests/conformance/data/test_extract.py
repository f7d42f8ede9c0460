"""Conformance of text extraction and language identification (spec/data.py extract_text_from_html_bytes,
identify_language; handout A4 §2.2–§2.3).

Real pages: Debian documentation in eleven languages, and the same pages in legacy encodings (windows-1252,
ISO-8859-1, Shift_JIS, EUC-JP, GB18030, KOI8-R, windows-1251 without a charset declaration, UTF-16), from
fixtures/data/web/ (provenance in fixtures/data/README.md). The extraction oracle is resiliparse's
``extract_plain_text`` on the page decoded with its known encoding, as the handout prescribes; the language oracle is
the language each text was written in.
"""

from __future__ import annotations

import json

import pytest

from fixtures import FIXTURES_DIR
from tests.harness.oracles import oracle
from tests.harness.snapshot import JsonSnapshotExtension

WEB = FIXTURES_DIR / "data" / "web"
PAGES: dict[str, dict] = json.loads((WEB / "html" / "encodings.json").read_text(encoding="utf-8"))
CLEAN = sorted(name for name, page in PAGES.items() if "original" not in page)
TRANSCODED = sorted(name for name, page in PAGES.items() if "original" in page and page["encoding"] != "utf-8")
CORRUPTED = sorted(name for name, page in PAGES.items() if "invalid_utf8_offsets" in page)
LANGUAGES = sorted(path.stem for path in (WEB / "langid").glob("*.txt"))


def page_bytes(name: str) -> bytes:
    return (WEB / "html" / name).read_bytes()


def resiliparse_text(html: str) -> str:
    with oracle("resiliparse extract_plain_text"):
        from resiliparse.extract.html2text import extract_plain_text

        return extract_plain_text(html)


def extracted(impl, data: bytes) -> str | None:
    text = impl.extract_text_from_html_bytes(data)
    assert text is None or isinstance(text, str), f"expected a str (or None), got {type(text).__name__}"
    return text


# --------------------------------------------------------------------------------------------- extraction


@pytest.mark.component("extract_text_from_html_bytes")
@pytest.mark.parametrize("name", CLEAN)
def test_extract_utf8_page(impl, name):
    """A UTF-8 page gives exactly resiliparse's extract_plain_text of it (the course's test, on real pages)."""
    assert extracted(impl, page_bytes(name)) == resiliparse_text(page_bytes(name).decode("utf-8"))


@pytest.mark.component("extract_text_from_html_bytes")
@pytest.mark.parametrize("name", TRANSCODED)
def test_extract_legacy_encoding(impl, name):
    """A page in a legacy encoding (declared or not) gives the same text as its UTF-8 original: the encoding is
    detected when UTF-8 fails."""
    original = page_bytes(PAGES[name]["original"]).decode("utf-8")
    assert extracted(impl, page_bytes(name)) == resiliparse_text(original), f"{name} ({PAGES[name]['encoding']})"


@pytest.mark.strict
@pytest.mark.component("extract_text_from_html_bytes")
@pytest.mark.parametrize("name", CORRUPTED)
def test_extract_invalid_utf8_keeps_the_text(impl, name):
    """A UTF-8 page with a few invalid bytes still gives its text: every line away from the bad bytes survives (the
    handout asks for other encodings, not for corrupted pages: strict)."""
    text = extracted(impl, page_bytes(name))
    assert text is not None, "a page with five bad bytes in 10 KB has text: None loses it"
    expected = resiliparse_text(page_bytes(PAGES[name]["original"]).decode("utf-8")).splitlines()
    kept = set(text.splitlines())
    lost = [line for line in expected if line not in kept]
    assert len(lost) <= len(PAGES[name]["invalid_utf8_offsets"]), f"lines lost: {lost[:5]}"


@pytest.mark.strict
@pytest.mark.component("extract_text_from_html_bytes")
@pytest.mark.parametrize("name", CORRUPTED)
def test_extract_invalid_bytes_become_replacement_characters(impl, name):
    """Undecodable bytes become U+FFFD, one per bad byte, so that the loss stays visible."""
    assert extracted(impl, page_bytes(name)).count("\ufffd") == len(PAGES[name]["invalid_utf8_offsets"])


@pytest.mark.component("extract_text_from_html_bytes")
@pytest.mark.parametrize("data", [b"", b"   \n\t  ", b"<html><head><title></title></head><body></body></html>"],
                         ids=["empty", "whitespace", "empty-body"])
def test_extract_empty_page(impl, data):
    """A page without text gives no text: an empty string (or None, which the course's adapter allows)."""
    assert extracted(impl, data) in ("", None)


@pytest.mark.strict
@pytest.mark.component("extract_text_from_html_bytes")
@pytest.mark.parametrize("data", [b"", b"   \n\t  ", b"\x00\xff\xfe\x80 binary"], ids=["empty", "whitespace", "binary"])
def test_extract_always_a_string(impl, data):
    """Whatever the bytes, a str: "" for no text, never None."""
    assert isinstance(extracted(impl, data), str)


@pytest.mark.strict
@pytest.mark.component("extract_text_from_html_bytes")
def test_golden_extracted_text(impl, snapshot):
    """The text of every fixture page equals the golden (resiliparse's output as of the goldens: a newer
    resiliparse that extracts differently shows here first, hence the strict level)."""
    texts = {name: extracted(impl, page_bytes(name)) for name in sorted(PAGES)}
    assert texts == snapshot.use_extension(JsonSnapshotExtension)


# --------------------------------------------------------------------------------------------- language ID


def language_of(impl, text: str) -> tuple[str, float]:
    result = impl.identify_language(text)
    assert isinstance(result, tuple) and len(result) == 2, f"expected (label, score), got {result!r}"
    label, score = result
    assert 0 <= score <= 1, f"the score must lie in [0, 1], got {score}"
    return label, score


@pytest.mark.component("identify_language")
@pytest.mark.parametrize("language", ["en", "zh"])
def test_identify_english_and_chinese(impl, language):
    """Running text in English is "en", in Chinese "zh", with a score in [0, 1] (the course's two tests); the text
    has newlines."""
    text = (WEB / "langid" / f"{language}.txt").read_text(encoding="utf-8")
    assert "\n" in text
    assert language_of(impl, text)[0] == language


@pytest.mark.strict
@pytest.mark.component("identify_language")
@pytest.mark.parametrize("language", LANGUAGES)
def test_identify_every_fixture_language(impl, language):
    """Each of the fixtures' eleven languages gets its ISO 639-1 label, with a Python float score above 0.5."""
    label, score = language_of(impl, (WEB / "langid" / f"{language}.txt").read_text(encoding="utf-8"))
    assert (label, type(score)) == (language, float) and score > 0.5, (label, score)


@pytest.mark.component("identify_language")
def test_identify_extracted_page(impl):
    """The text extracted from a Chinese page is Chinese: language ID reads extraction's output as it comes."""
    with oracle("resiliparse extract_plain_text"):
        text = resiliparse_text(page_bytes("faq-kernel.zh-cn.utf-8.html").decode("utf-8"))
    assert language_of(impl, text)[0] == "zh"
