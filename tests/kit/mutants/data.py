"""Web-data filtering's mutants (spec/data.py): extraction, language ID, PII masks, classifiers, Gopher rules,
deduplication.

Each is a mistake a course participant could make: a missing encoding fallback, a raw fastText label, a naive
email or IPv4 pattern, swapped labels or the other label's probability, a threshold on the wrong side, a dedup that
keeps the first copy, a MinHash without normalisation or without the Jaccard check, clusters that are not transitive.
"""

from __future__ import annotations

import itertools
import re
import shutil
from collections import Counter
from functools import partial
from pathlib import Path

import mmh3
import numpy as np
from resiliparse.extract.html2text import extract_plain_text

from impl.data import classifiers, fasttext_model, gopher, langid, minhash, pii
from tests.kit.mutants.common import Mutant

# --------------------------------------------------------------------------------------------- extraction


def _extract_variant(html_bytes, *, fallback="detect", errors="replace"):
    """extract_text_from_html_bytes written out plainly, with knobs."""
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    try:
        html = html_bytes.decode("utf-8")
    except UnicodeDecodeError:
        if fallback is None:
            return None
        if fallback == "detect":
            html = bytes_to_str(html_bytes, detect_encoding(html_bytes, from_html_meta=True), errors=errors)
        else:
            html = html_bytes.decode(fallback, errors="replace")
    return extract_plain_text(html)


# --------------------------------------------------------------------------------------------- language ID


def _language_variant(text, *, raw_label=False, percent=False, join_lines=True, score_type=float):
    model = fasttext_model.model_at(langid.default_language_model()).model
    labels, probabilities = model.predict(" ".join(text.splitlines()) if join_lines else text, k=1)
    label = labels[0] if raw_label else labels[0].removeprefix(fasttext_model.LABEL_PREFIX)
    score = min(1.0, float(probabilities[0])) * (100 if percent else 1)
    return label, score_type(score)


# --------------------------------------------------------------------------------------------- classifiers


def _classifier_variant(text, *, task, raw_label=False, swap=False, other_score=False, invert=False, always=None,
                        join_lines=True, score_type=float):
    """The kit's classifier for ``task`` written out on fastText's two probabilities, with knobs."""
    positive, negative = classifiers.TASKS[task].labels
    model = classifiers.active_classifier(task).model.model
    labels, scores = model.predict(fasttext_model.one_line(text) if join_lines else text, k=2)
    p = dict(zip((label.removeprefix(fasttext_model.LABEL_PREFIX) for label in labels), scores)).get(positive, 0.0)
    label = always or (positive if (p < 0.5 if invert else p >= 0.5) else negative)
    score = min(1.0, float(p if label == positive else 1 - p))
    if swap:
        label = negative if label == positive else positive
    if other_score:
        score = 1 - score
    return (fasttext_model.LABEL_PREFIX + label if raw_label else label), score_type(score)


# --------------------------------------------------------------------------------------------- PII


def _email_counts_existing(text):
    masked, _ = pii.mask_emails(text)
    return masked, masked.count(pii.EMAIL_MASK)


def _subn(pattern, mask, text):
    return re.subn(pattern, mask, text)


_US_WITHOUT_PARENTHESES = r"(?<!\d)\d{3}[ .-]?\d{3}[ .-]?\d{4}(?!\d)"
_US_WITHOUT_COUNTRY_CODE = r"(?<![\w.])(?:\(\d{3}\)[ .-]?|\d{3}[ .-]?)\d{3}[ .-]?\d{4}(?!\w|[.-]\d)"
_DIGITS_WITH_SEPARATORS = r"(?<!\w)\+?\(?\d[\d ().-]{6,}\d(?!\w)"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

# --------------------------------------------------------------------------------------------- Gopher


def _gopher_variant(text, *, min_words_exclusive=False, length_exclusive=False, ellipsis_at_threshold=False,
                    alphabetic_characters=False, ellipsis_rule=True):
    words, lines = text.split(), text.split("\n")
    if not (50 < len(words) if min_words_exclusive else 50 <= len(words)) or len(words) > 100_000:
        return False
    mean = sum(map(len, words)) / len(words)
    if not (3 < mean < 10 if length_exclusive else 3 <= mean <= 10):
        return False
    ending = sum(line.rstrip().endswith("...") for line in lines)
    if ellipsis_rule and (ending >= 0.3 * len(lines) if ellipsis_at_threshold else ending > 0.3 * len(lines)):
        return False
    if alphabetic_characters:  # the share of alphabetic characters, not of words with one
        characters = "".join(words)
        return sum(c.isalpha() for c in characters) >= 0.8 * len(characters)
    return gopher.alphabetic_words_ok(words)


# --------------------------------------------------------------------------------------------- exact line dedup


def _exact_variant(input_files, output_directory, *, keep_first=False, per_file=False, skip_empty=False,
                   with_terminator=False):
    def key(line: bytes) -> bytes:
        return line if with_terminator else line.rstrip(b"\r\n")

    contents = {Path(p): Path(p).read_bytes().splitlines(keepends=True) for p in input_files}
    counts = Counter(key(line) for lines in contents.values() for line in lines)
    Path(output_directory).mkdir(parents=True, exist_ok=True)
    seen: set[bytes] = set()
    for path, lines in contents.items():
        if per_file:
            counts = Counter(key(line) for line in lines)
        kept = []
        for line in lines:
            if keep_first:  # dedup as a set: the first copy stays
                if key(line) not in seen:
                    kept.append(line)
                seen.add(key(line))
            elif counts[key(line)] == 1:
                kept.append(line)
        if kept or not skip_empty:
            (Path(output_directory) / path.name).write_bytes(b"".join(kept))


# --------------------------------------------------------------------------------------------- MinHash


_CALLS = itertools.count()


def _raw_shingle_hashes(text: str, ngrams: int) -> np.ndarray:
    words = text.split()
    grams = {" ".join(words[i:i + ngrams]) for i in range(max(1, len(words) - ngrams + 1))} if words else set()
    return np.unique(np.fromiter((mmh3.hash64(g, signed=False)[0] for g in grams), dtype=np.uint64, count=len(grams)))


def _minhash_variant(input_files, num_hashes, num_bands, ngrams, jaccard_threshold, output_directory, *, seed=0,
                     normalise=True, verify=True, transitive=True, keep_one=True, empty_duplicates=False,
                     vary_survivor=False):
    """minhash_deduplication written out plainly from the reference's pieces, with knobs."""
    minhash.check_arguments(num_hashes, num_bands, ngrams, jaccard_threshold)
    texts = [Path(p).read_text(encoding="utf-8") for p in input_files]
    # Without normalisation: the raw text's words, hashed as the reference hashes normalised ones.
    sets = [minhash.shingle_hashes(text, ngrams) if normalise else _raw_shingle_hashes(text, ngrams)
            for text in texts]
    hasher = minhash.MinHasher(num_hashes, seed)
    signatures = {i: hasher.signature(s) if len(s) else np.zeros(num_hashes, dtype=np.uint32)
                  for i, s in enumerate(sets) if len(s) or empty_duplicates}

    def similar(i: int, j: int) -> bool:
        similarity = minhash.jaccard(sets[i], sets[j]) if len(sets[i]) or len(sets[j]) else 1.0
        return not verify or similarity >= jaccard_threshold

    pairs = sorted(pair for pair in minhash.candidate_pairs(signatures, num_bands) if similar(*pair))
    drop: set[int] = set()
    if transitive:
        call = next(_CALLS)
        for index, cluster in enumerate(minhash.clusters(pairs)):
            keep = cluster[(call + index) % len(cluster)] if vary_survivor else cluster[0]
            drop.update(doc for doc in cluster if doc != keep or not keep_one)
    else:  # greedy: a document is dropped only as a duplicate of one already kept
        duplicates_of = {i: {b for a, b in pairs if a == i} | {a for a, b in pairs if b == i} for i in range(len(texts))}
        for i in range(len(texts)):
            if duplicates_of[i] & (set(range(i)) - drop):
                drop.add(i)
    Path(output_directory).mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(input_files):
        if i not in drop:
            shutil.copyfile(path, Path(output_directory) / Path(path).name)


MUTANTS: list[Mutant] = [
    Mutant("extract_utf8_only", "extract_text_from_html_bytes", "decodes every page as UTF-8 (errors replaced): no "
           "encoding detection", partial(_extract_variant, fallback="utf-8")),
    Mutant("extract_latin1_fallback", "extract_text_from_html_bytes", "falls back to Latin-1 instead of the detected "
           "encoding: Shift_JIS and GB18030 pages come out garbled", partial(_extract_variant, fallback="latin-1")),
    Mutant("extract_none_unless_utf8", "extract_text_from_html_bytes", "returns None for any page that is not valid "
           "UTF-8", partial(_extract_variant, fallback=None)),
    # strict: replacement characters for undecodable bytes are the kit's convention
    Mutant("extract_drops_bad_bytes", "extract_text_from_html_bytes", "drops undecodable bytes silently instead of "
           "U+FFFD", partial(_extract_variant, errors="ignore"), level="strict"),
    Mutant("language_raw_label", "identify_language", "returns fastText's raw label (__label__en)",
           partial(_language_variant, raw_label=True)),
    Mutant("language_percent_score", "identify_language", "a score in percent, not in [0, 1]",
           partial(_language_variant, percent=True)),
    Mutant("language_keeps_newlines", "identify_language", "passes text with newlines to fastText, which refuses it",
           partial(_language_variant, join_lines=False)),
    # strict: Python floats are the kit's convention (CONVENTIONS.md)
    Mutant("language_float32_score", "identify_language", "the score is a numpy float32",
           partial(_language_variant, score_type=np.float32), level="strict"),
    Mutant("email_counts_existing_masks", "mask_emails", "counts the masks already in the text as well",
           _email_counts_existing),
    Mutant("email_greedy_pattern", "mask_emails", r"\S+@\S+: swallows the punctuation around an address",
           partial(_subn, r"\S+@\S+", pii.EMAIL_MASK)),
    Mutant("phone_without_parentheses", "mask_phone_numbers", "no (283) area-code form",
           partial(_subn, _US_WITHOUT_PARENTHESES, pii.PHONE_MASK)),
    # strict: country codes and the look-alikes are the kit's extras
    Mutant("phone_without_country_code", "mask_phone_numbers", "US forms only: +1 stays outside the mask, "
           "international numbers are kept", partial(_subn, _US_WITHOUT_COUNTRY_CODE, pii.PHONE_MASK), level="strict"),
    Mutant("phone_any_digit_run", "mask_phone_numbers", "any 8+ digits with separators: dates, ISBNs and long numbers "
           "masked", partial(_subn, _DIGITS_WITH_SEPARATORS, pii.PHONE_MASK), level="strict"),
    Mutant("ip_any_three_digits", "mask_ips", r"\d{1,3} for each number: 999.300.1.1 is masked",
           partial(_subn, r"\b\d{1,3}(?:\.\d{1,3}){3}\b", pii.IP_MASK)),
    Mutant("ip_no_boundaries", "mask_ips", "valid octets but no boundaries: part of 256.1.1.1 is masked",
           partial(_subn, rf"{_OCTET}(?:\.{_OCTET}){{3}}", pii.IP_MASK)),
    Mutant("classify_nsfw_labels_swapped", "classify_nsfw", "returns the other label (nsfw for clean text)",
           partial(_classifier_variant, task="nsfw", swap=True)),
    Mutant("classify_nsfw_raw_label", "classify_nsfw", "returns fastText's raw label (__label__nsfw)",
           partial(_classifier_variant, task="nsfw", raw_label=True)),
    # strict: Python floats are the kit's convention (CONVENTIONS.md)
    Mutant("classify_nsfw_numpy_score", "classify_nsfw", "the score is a numpy float64",
           partial(_classifier_variant, task="nsfw", score_type=np.float64), level="strict"),
    Mutant("classify_toxic_score_of_other_label", "classify_toxic_speech", "the right label with the other label's "
           "probability", partial(_classifier_variant, task="toxic", other_score=True)),
    Mutant("classify_toxic_threshold_inverted", "classify_toxic_speech", "toxic when the probability of toxic is "
           "below 0.5",
           partial(_classifier_variant, task="toxic", invert=True)),
    Mutant("classify_toxic_always_non_toxic", "classify_toxic_speech", "every text non-toxic",
           partial(_classifier_variant, task="toxic", always="non-toxic")),
    Mutant("classify_quality_always_wiki", "classify_quality", "every page high quality",
           partial(_classifier_variant, task="quality", always="wiki")),
    Mutant("classify_quality_keeps_newlines", "classify_quality", "passes text with newlines to fastText, which "
           "refuses it",
           partial(_classifier_variant, task="quality", join_lines=False)),
    Mutant("classify_quality_labels_swapped", "classify_quality", "wiki and cc exchanged",
           partial(_classifier_variant, task="quality", swap=True)),
    Mutant("gopher_rejects_50_words", "gopher_quality_filter", "more than 50 words required, not at least 50",
           partial(_gopher_variant, min_words_exclusive=True)),
    Mutant("gopher_mean_length_exclusive", "gopher_quality_filter", "mean word length 3 or 10 rejected",
           partial(_gopher_variant, length_exclusive=True)),
    Mutant("gopher_ellipsis_at_30_percent", "gopher_quality_filter", "exactly 30% of lines with an ellipsis rejected",
           partial(_gopher_variant, ellipsis_at_threshold=True)),
    Mutant("gopher_alphabetic_characters", "gopher_quality_filter", "the share of alphabetic characters instead of "
           "words with one", partial(_gopher_variant, alphabetic_characters=True)),
    Mutant("gopher_no_ellipsis_rule", "gopher_quality_filter", "the ellipsis rule left out",
           partial(_gopher_variant, ellipsis_rule=False)),
    Mutant("exact_keeps_first_copy", "exact_line_deduplication", "keeps the first copy of a repeated line (set "
           "dedup) instead of removing every copy", partial(_exact_variant, keep_first=True)),
    Mutant("exact_counts_per_file", "exact_line_deduplication", "counts lines within each file, not over the corpus",
           partial(_exact_variant, per_file=True)),
    Mutant("exact_skips_empty_outputs", "exact_line_deduplication", "writes no file for an input left empty",
           partial(_exact_variant, skip_empty=True)),
    # strict: the last line without its newline is the kit's convention
    Mutant("exact_compares_terminators", "exact_line_deduplication", "a last line without a newline differs from the "
           "same line with one", partial(_exact_variant, with_terminator=True), level="strict"),
    Mutant("minhash_no_normalisation", "minhash_deduplication", "shingles the raw text: case, accents and punctuation "
           "hide duplicates", partial(_minhash_variant, normalise=False)),
    Mutant("minhash_no_jaccard_check", "minhash_deduplication", "every LSH candidate taken for a duplicate, without "
           "the true Jaccard check", partial(_minhash_variant, verify=False)),
    Mutant("minhash_not_transitive", "minhash_deduplication", "drops a document only as the duplicate of one kept: "
           "A~B~C keeps A and C", partial(_minhash_variant, transitive=False)),
    Mutant("minhash_drops_whole_cluster", "minhash_deduplication", "removes every member of a cluster",
           partial(_minhash_variant, keep_one=False)),
    # strict: seeds and empty documents are the kit's conventions
    Mutant("minhash_survivor_ignores_seed", "minhash_deduplication", "the survivor changes from call to call with the "
           "same seed", partial(_minhash_variant, vary_survivor=True), level="strict"),
    Mutant("minhash_empty_documents_duplicate", "minhash_deduplication", "documents with no words taken for duplicates "
           "of each other", partial(_minhash_variant, empty_duplicates=True), level="strict"),
]
