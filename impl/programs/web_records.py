"""Reading WARC and WET files for ``filter-web-data``: every record that could be a document becomes one, or a
failure with its reason; nothing is lost silently (A4 §2.1-§2.2; fixtures/data/README.md on what the readers do).

A *document* is a response, resource or conversion record (WET), or a record whose type the reader could not
parse. Its outcome is text (HTML extracted with resiliparse; WET text as it is) or one of ``FAILURES``. Other
records (warcinfo, request, metadata, revisit) are counted by type. A reader exception (a file damaged past a
record: fastwarc raises ``OSError: Invalid WARC header``) ends the file: what was read before is kept, the file is
reported as damaged.

Truncation: neither fastwarc nor warcio reports a record cut by the end of the file (a download interrupted
inside a gzip member, a wrong Content-Length); the payload read is compared with the length the headers promise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPLACEMENT = "\N{REPLACEMENT CHARACTER}"
FAILURES = {
    "malformed_record": "a record without a target URI, of an unparsable type, or without an HTTP message",
    "truncated": "fewer payload bytes than the record's Content-Length (the file ends inside it)",
    "http_status": "an HTTP status other than 2xx (a redirect, an error page)",
    "non_html": "a payload that is not HTML (Content-Type, or the first bytes of an image, PDF, archive, binary)",
    "undecodable": "text that fails to decode or extract, or more U+FFFD than extract.max_replacement_fraction",
    "empty": "no text after extraction (an empty or whitespace-only page)",
}
HTML_TYPES = ("text/html", "application/xhtml+xml")
BINARY_MAGIC = (b"\x89PNG", b"%PDF", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b", b"RIFF", b"\x00\x00\x01\x00")
WARC_MAGIC = (b"\x1f\x8b", b"WARC/")  # a gzipped or a plain WARC file starts with one of these


@dataclass
class Outcome:
    """One document record: its text, or the reason it failed (with a detail for the examples)."""
    index: int  # the record's position in its file (every record counts)
    id: str
    url: str
    text: str | None = None
    failure: str | None = None
    detail: str = ""


@dataclass
class FileEnd:
    """What the file held besides documents: other records by type, and the error that ended it early, if any."""
    other_records: dict[str, int]
    error: str | None = None
    records_read: int = 0


def is_warc_file(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(5).startswith(WARC_MAGIC)


def read_documents(path: Path, max_replacement_fraction: float) -> Iterator[Outcome | FileEnd]:
    """The outcome of every document record of ``path`` in file order, then one FileEnd."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    document_types = (WarcRecordType.response, WarcRecordType.resource, WarcRecordType.conversion,
                      WarcRecordType.unknown, WarcRecordType.no_type)  # a tuple: the type objects are unhashable
    other: dict[str, int] = {}
    index = 0
    with open(path, "rb") as stream:
        records = iter(ArchiveIterator(stream, record_types=WarcRecordType.any_type, parse_http=True))
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except Exception as error:  # a damaged file (fastwarc: OSError: Invalid WARC header): keep what was read
                yield FileEnd(other, f"{type(error).__name__}: {error}", index)
                return
            if record.record_type in document_types:
                yield outcome(record, index, path.name, max_replacement_fraction)
            else:
                kind = str(record.record_type)
                other[kind] = other.get(kind, 0) + 1
            index += 1
    yield FileEnd(other, None, index)


def outcome(record, index: int, file_name: str, max_replacement_fraction: float) -> Outcome:
    from fastwarc.warc import WarcRecordType

    url = record.headers.get("WARC-Target-URI") or ""
    doc = Outcome(index, record.record_id or f"{file_name}#{index}", url)

    def failed(reason: str, detail: str) -> Outcome:
        doc.failure, doc.detail = reason, detail
        return doc

    if record.record_type in (WarcRecordType.unknown, WarcRecordType.no_type):  # garbled WARC headers: no_type
        return failed("malformed_record", "WARC headers the reader could not parse (record type unknown)")
    if not url or not record.record_id:
        return failed("malformed_record", "no WARC-Target-URI or WARC-Record-ID")
    try:
        payload = record.reader.read()
    except Exception as error:  # a damaged gzip member inside the record
        return failed("truncated", f"reading the payload failed: {type(error).__name__}: {error}")
    if len(payload) < record.content_length:
        return failed("truncated", f"{len(payload)} of {record.content_length} payload bytes")
    if record.record_type == WarcRecordType.conversion:  # WET: text already
        text = payload.decode("utf-8", errors="replace")
    else:
        if record.is_http and (record.http_headers is None or record.http_headers.status_code is None):
            return failed("malformed_record", "no HTTP message before the payload")
        status = record.http_headers.status_code if record.is_http else 200
        if not 200 <= status < 300:
            return failed("http_status", f"HTTP status {status}")
        content_type = (record.http_content_type if record.is_http else record.headers.get("Content-Type")) or ""
        content_type = content_type.split(";")[0].strip().lower()
        if content_type and content_type not in HTML_TYPES:
            return failed("non_html", f"Content-Type {content_type}")
        if looks_binary(payload):
            return failed("non_html", f"binary payload {payload[:8]!r}")
        try:
            from impl.data.extract import extract_text_from_html_bytes

            text = extract_text_from_html_bytes(payload)
        except Exception as error:
            return failed("undecodable", f"{type(error).__name__}: {error}")
    if not text.strip():
        return failed("empty", f"{len(payload)} payload bytes, no text")
    replaced = text.count(REPLACEMENT) / len(text)
    if replaced > max_replacement_fraction:
        return failed("undecodable", f"{replaced:.0%} of the characters are U+FFFD")
    doc.text = text
    return doc


def looks_binary(payload: bytes) -> bool:
    """An image, PDF or archive by its first bytes, or bytes no text has (NUL, most C0 controls) early on."""
    head = payload[:512]
    if head.startswith(BINARY_MAGIC):
        return True
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a byte-order mark: text with NULs
        return False
    controls = sum(b < 9 or 13 < b < 32 for b in head)
    return controls > len(head) // 20
