"""HTML bytes to text (A4 §2.2): UTF-8 first, then the encoding detected from the bytes; resiliparse extracts."""

from __future__ import annotations

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding


def decode_html(html_bytes: bytes) -> str:
    """The page as text: UTF-8 when the bytes are valid UTF-8 (98% of the web), else the detected encoding.

    Detection reads the page's ``<meta charset>`` when it has one and uchardet's guess otherwise. Bytes invalid in
    that encoding too (a corrupted page) become U+FFFD rather than vanishing, so that the loss stays visible.
    """
    try:
        return html_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return bytes_to_str(html_bytes, detect_encoding(html_bytes, from_html_meta=True), errors="replace")


def extract_text_from_html_bytes(html_bytes: bytes) -> str:
    """The visible text of a page given as raw bytes (spec/data.py)."""
    return extract_plain_text(decode_html(html_bytes))
