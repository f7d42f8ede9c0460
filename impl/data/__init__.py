"""Filtering web data (handout A4 §2–§3; spec/data.py): extraction, language ID, PII, harmful-content and quality
classifiers, quality rules, deduplication."""

from impl.data.classifiers import classify_nsfw, classify_quality, classify_toxic_speech
from impl.data.dedup import exact_line_deduplication
from impl.data.extract import extract_text_from_html_bytes
from impl.data.gopher import gopher_quality_filter
from impl.data.langid import identify_language
from impl.data.minhash import minhash_deduplication
from impl.data.pii import mask_emails, mask_ips, mask_phone_numbers

__all__ = ["extract_text_from_html_bytes", "identify_language", "mask_emails", "mask_phone_numbers", "mask_ips",
           "classify_nsfw", "classify_toxic_speech", "gopher_quality_filter", "classify_quality",
           "exact_line_deduplication", "minhash_deduplication"]
