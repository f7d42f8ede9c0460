"""The handout's subset of the Gopher quality rules (A4 §2.6; Rae et al. 2021, appendix A).

Words are whitespace-separated tokens and lines the text split at newlines: the rules read the text the way the
handout states them, and each rule is a function of its own, so that a pipeline can say which one dropped a page.
"""

from __future__ import annotations

MIN_WORDS, MAX_WORDS = 50, 100_000
MIN_MEAN_WORD_LENGTH, MAX_MEAN_WORD_LENGTH = 3, 10
MAX_ELLIPSIS_LINE_FRACTION = 0.3
MIN_ALPHABETIC_WORD_FRACTION = 0.8


def word_count_ok(words: list[str]) -> bool:
    return MIN_WORDS <= len(words) <= MAX_WORDS


def mean_word_length_ok(words: list[str]) -> bool:
    return bool(words) and MIN_MEAN_WORD_LENGTH <= sum(map(len, words)) / len(words) <= MAX_MEAN_WORD_LENGTH


def ellipsis_lines_ok(lines: list[str]) -> bool:
    ending = sum(line.rstrip().endswith("...") for line in lines)
    return ending <= MAX_ELLIPSIS_LINE_FRACTION * len(lines)


def alphabetic_words_ok(words: list[str]) -> bool:
    alphabetic = sum(any(c.isalpha() for c in word) for word in words)
    return bool(words) and alphabetic >= MIN_ALPHABETIC_WORD_FRACTION * len(words)


def gopher_rule_failures(text: str) -> list[str]:
    """The names of the rules ``text`` breaks, in the handout's order (empty: it passes)."""
    words, lines = text.split(), text.split("\n")
    checks = {"word_count": word_count_ok(words), "mean_word_length": mean_word_length_ok(words),
              "ellipsis_lines": ellipsis_lines_ok(lines), "alphabetic_words": alphabetic_words_ok(words)}
    return [rule for rule, ok in checks.items() if not ok]


def gopher_quality_filter(text: str) -> bool:
    return not gopher_rule_failures(text)
