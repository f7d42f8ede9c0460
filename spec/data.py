"""Filtering web data: text extraction, language identification, PII masking, harmful-content and quality
classifiers, quality rules and deduplication (handout A4 §2–§3). The docstrings are normative.

Text in, text out: every function takes Python ``str`` (or ``bytes`` for raw HTML) and returns plain Python
values. The deduplication functions read UTF-8 text files, one document per file, and write their outputs under the
same file names in ``output_directory``.
"""

from __future__ import annotations

import os

# This area's components, in the report's order (spec.COMPONENTS is built from them).
__all__ = ["extract_text_from_html_bytes", "identify_language", "mask_emails", "mask_phone_numbers", "mask_ips",
           "classify_nsfw", "classify_toxic_speech", "gopher_quality_filter", "classify_quality",
           "exact_line_deduplication", "minhash_deduplication"]

# The replacement strings of the PII masks (A4 §2.4).
EMAIL_MASK = "|||EMAIL_ADDRESS|||"
PHONE_MASK = "|||PHONE_NUMBER|||"
IP_MASK = "|||IP_ADDRESS|||"


def extract_text_from_html_bytes(html_bytes: bytes) -> str | None:
    """The visible text of an HTML page given as raw bytes (A4 §2.2).

    - Decoding: the bytes are decoded as UTF-8 when they are valid UTF-8; otherwise in the encoding detected from
      the bytes (``resiliparse.parse.encoding.detect_encoding``, or as good a detector), so that a windows-1252,
      Shift_JIS or GB18030 page gives its real characters.
    - Extraction: ``resiliparse.extract.html2text.extract_plain_text`` with its default arguments on the decoded
      string; the result is exactly what that function returns.
    - ``None`` is allowed only where no text can be decoded at all; (strict) never: bytes that are not valid in any
      encoding are decoded with replacement characters, and empty or whitespace-only input gives ``""``.
    """
    ...


def identify_language(text: str) -> tuple[str, float]:
    """The main language of ``text`` and the confidence of that prediction (A4 §2.3).

    - The label is the ISO 639 code that fastText's ``lid.176`` model uses, without its ``__label__`` prefix:
      ``"en"`` for English, ``"zh"`` for Chinese, ``"fr"``, ``"de"``, ``"ja"`` ...
    - The score is a float in [0, 1]: the probability of the label (fastText's top-1 probability).
    - Text with newlines is accepted (fastText's predict refuses them: replace them with spaces first).
    - (strict) The score is a Python ``float``; text in each language of the kit's fixtures is labelled correctly.
    """
    ...


def mask_emails(text: str) -> tuple[str, int]:
    """Replace every email address in ``text`` by ``EMAIL_MASK``; return the new text and the number replaced
    (A4 §2.4).

    - Everything else in the text is unchanged, including a ``EMAIL_MASK`` already present (not counted).
    - Masking is idempotent: masking the result again changes nothing and counts 0.
    - (strict) Addresses with dots, plus signs, hyphens and subdomains (``first.last+tag@mail.example.co.uk``),
      in angle brackets (``<a@b.org>``: the brackets stay), at the very start or end of the text, and in upper
      case are masked; a bare ``@handle`` or a word with no domain after ``@`` is not an address.
    """
    ...


def mask_phone_numbers(text: str) -> tuple[str, int]:
    """Replace every phone number in ``text`` by ``PHONE_MASK``; return the new text and the number replaced
    (A4 §2.4).

    - At least the common US formats: ``2831823829``, ``(283)-182-3829``, ``(283) 182 3829``, ``283-182-3829``,
      ``283.182.3829``, ``283 182 3829``: each one number, masked as a whole.
    - Masking is idempotent: masking the result again changes nothing and counts 0.
    - (strict) A leading country code belongs to the number (``+1 283 182 3829`` is one mask, not ``+1`` and a
      mask); international formats are masked too (``+44 20 7946 0958``, ``+33 1 23 45 67 89``,
      ``+49 30 1234567``); years, dates (``2024-01-15``), times, prices, IPv4 addresses and numbers of fewer than
      seven digits are not phone numbers, nor is a run of digits inside a longer run of digits.
    """
    ...


def mask_ips(text: str) -> tuple[str, int]:
    """Replace every IPv4 address in ``text`` by ``IP_MASK``; return the new text and the number replaced
    (A4 §2.4).

    - An IPv4 address is four decimal numbers from 0 to 255 joined by dots: ``192.0.2.146`` is one, and so is
      ``0.0.0.0``; ``999.300.1.1`` and ``256.1.1.1`` are not (nor any part of them).
    - Addresses at the start or end of the text and before punctuation (``... at 10.0.0.1.``) are masked.
    - Masking is idempotent: masking the result again changes nothing and counts 0.
    - (strict) A dotted run of five or more numbers (``1.2.3.4.5``, a version string) is not an address.
    """
    ...


def classify_nsfw(text: str) -> tuple[str, float]:
    """Whether ``text`` is not safe for work (pornography, profanity, other disturbing content), and the confidence
    of that verdict (A4 §2.5).

    - The label is ``"nsfw"`` or ``"non-nsfw"`` (the names of the handout's Dolma Jigsaw model without its
      ``__label__`` prefix).
    - The score is the confidence in the returned label, a float in [0, 1] (fastText's top-1 probability; the
      1e-5 by which fastText's can exceed 1 is accepted).
    - Text with newlines is accepted.
    - Blatant cases get the label the handout's classifier gives them, with a score above 0.5: an obscene,
      insult-laden comment is ``"nsfw"``; a polite technical comment is ``"non-nsfw"``.
    - (strict) The score is a Python ``float`` in [0, 1]; a text gets the same label whether its lines are broken
      by newlines or by spaces; a dozen more clear cases, each way, get their label.
    """
    ...


def classify_toxic_speech(text: str) -> tuple[str, float]:
    """Whether ``text`` is toxic speech ("rude, disrespectful, or unreasonable language that is likely to make
    someone leave a discussion"), and the confidence of that verdict (A4 §2.5).

    - The label is ``"toxic"`` or ``"non-toxic"``; the score, the text and the cases as for ``classify_nsfw``: an
      insult-laden comment aimed at someone is ``"toxic"``, a polite technical comment ``"non-toxic"``.
    - (strict) As for ``classify_nsfw``.
    """
    ...


def gopher_quality_filter(text: str) -> bool:
    """True when ``text`` passes the handout's subset of the Gopher quality rules (A4 §2.6), False otherwise.

    Words are the text's tokens (whitespace-separated, or ``nltk.word_tokenize``'s: the two agree on the texts the
    kit checks); lines are the text split at newlines. A document is rejected when any of:
    1. it has fewer than 50 or more than 100,000 words (50 and 100,000 pass);
    2. the mean word length (characters) lies outside [3, 10] (3 and 10 pass);
    3. more than 30% of its lines end with an ellipsis ``...`` (exactly 30% passes);
    4. fewer than 80% of its words contain at least one alphabetic character (exactly 80% passes).
    Each rule rejects on its own, whatever the other three say.
    """
    ...


def classify_quality(text: str) -> tuple[str, float]:
    """Whether ``text`` reads like a page worth training on (like the pages Wikipedia cites) or like a random Common
    Crawl page, and the confidence of that verdict (A4 §2.7).

    - The label is ``"wiki"`` (high quality) or ``"cc"`` (low quality); the score is the confidence in the returned
      label, a float in [0, 1] as for ``classify_nsfw``; text with newlines is accepted.
    - Blatant cases, with a score above 0.5: a paragraph of an encyclopedia article is ``"wiki"``; a shop or SEO
      page of navigation, prices and keywords is ``"cc"``.
    - (strict) The score is a Python ``float`` in [0, 1]; newlines or spaces give the same label; ten more clear
      cases each way (reference prose and documentation; log-in forms, pay walls, error pages, link lists, spam) get
      their label.
    """
    ...


def exact_line_deduplication(input_files: list[str | os.PathLike], output_directory: str | os.PathLike) -> None:
    """Remove every line that occurs more than once in the whole set of files (A4 §3.1).

    - Counts are over all the input files together (two copies in one file count too); a line counted more than
      once is removed everywhere, every copy of it; the lines left keep their order and their text.
    - Each input ``dir/name`` is written as ``output_directory/name``, also when no line is left (an empty file);
      the inputs are not modified.
    - Lines are compared by their text (a hash of it may stand for the text, as the handout suggests).
    - (strict) The last line compares equal whether or not it ends with a newline; the output directory is created
      when missing; two inputs with the same file name raise ValueError naming it, before anything is written.
    """
    ...


def minhash_deduplication(input_files: list[str | os.PathLike], num_hashes: int, num_bands: int, ngrams: int,
                          jaccard_threshold: float, output_directory: str | os.PathLike, *, seed: int = 0) -> None:
    """Fuzzy document deduplication with MinHash and LSH (A4 §3.2): each input file is one document.

    - Normalisation before shingling: NFD, accents (combining marks) removed, lower case, punctuation removed,
      runs of whitespace collapsed to one space. Shingles are the word ``ngrams``-grams of the normalised text (a
      document of fewer words has one shingle, all of it; a document with no words has none).
    - A signature of ``num_hashes`` minhashes, split into ``num_bands`` bands of ``num_hashes / num_bands`` rows;
      two documents sharing all the rows of any band are candidates.
    - Candidates whose true Jaccard similarity of shingle sets is ≥ ``jaccard_threshold`` are duplicates;
      clusters are the transitive closure of duplicate pairs (A~B and B~C put A, B, C in one cluster).
    - Of each cluster exactly one document is written, chosen at random; every document in no cluster is written.
      Written documents keep their exact bytes, under their input file names in ``output_directory``.
    - (strict) The same ``seed`` gives the same output; documents with no words are never duplicates; the output
      directory is created when missing; ``num_hashes`` not divisible by ``num_bands``, a threshold outside [0, 1],
      ``ngrams`` < 1, or two inputs with the same file name raise ValueError naming the argument, before anything
      is written.
    """
    ...
