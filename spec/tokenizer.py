"""The byte-level BPE tokenizer (handout A1 §2). The docstrings are normative."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Protocol

# This area's components, in the report's order (spec.COMPONENTS is built from them).
__all__ = ["train_bpe", "Tokenizer"]

# GPT-2's pre-tokenizer, applied with the ``regex`` package (A1 §2.4).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def train_bpe(input_path: str | os.PathLike, vocab_size: int, special_tokens: list[str]
              ) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train a byte-level BPE tokenizer on a UTF-8 text file (A1 §2.4–§2.5).

    - Special tokens are split out of the text first (escaped alternation, longest first);
      they are never counted, never merged into or across, and each is one vocabulary entry.
    - Every other stretch of text is pre-tokenized with ``GPT2_PATTERN``; pairs never cross
      pre-token boundaries; no end-of-word marker.
    - Each merge takes the pair with the highest count; ties go to the lexicographically
      greater pair compared as a tuple of bytes: ``max`` over ``(count, (bytes_a, bytes_b))``.
    - Exactly vocab_size − 256 − len(special_tokens) merges (fewer only if no pair is left),
      returned in creation order. The vocabulary holds the 256 single bytes, the special
      tokens (UTF-8 encoded) and one token per merge (the concatenation), ``vocab_size``
      entries in all; which id each gets is the implementation's choice.
    - (strict) vocab_size below 256 + len(special_tokens) raises ValueError; a missing file raises
      FileNotFoundError; an empty special token (it would match between any two characters) raises
      ValueError, before any training.
    """
    ...


class Tokenizer(Protocol):
    """Encode and decode with a BPE vocabulary and merge list (A1 §2.6).

    ``Tokenizer(vocab, merges, special_tokens=None)``; ``Tokenizer.from_files(vocab_filepath,
    merges_filepath, special_tokens=None)`` reads the course's format (GPT-2's vocab.json and
    merges.txt, tokens written in GPT-2's byte-to-unicode alphabet).

    - Special tokens are matched first, longest first where they overlap
      (``<|endoftext|><|endoftext|>`` is one token when both are registered); a special token
      absent from ``vocab`` is appended to it. A special-looking string that is not registered
      is plain text.
    - Within each pre-token, merges apply in rank order (the merge list's order): repeatedly
      merge the adjacent pair of lowest rank, until none is in the merge list. With GPT-2's
      files the ids equal tiktoken's "gpt2" encoding.
    - ``decode`` concatenates the tokens' bytes and decodes UTF-8 with replacement (U+FFFD),
      so any sequence of the vocabulary's ids decodes; decode(encode(s)) == s for every string s.
    - (strict) ``decode`` of an id that is not in the vocabulary raises ValueError, KeyError or IndexError.
    - (strict) An empty special token (it would match between any two characters) raises ValueError
      when the tokenizer is built.
    - ``encode_iterable`` takes any iterable of strings (a file object: its lines) and yields
      ids lazily in memory bounded by the longest pre-token, never by the input; its output
      equals ``encode`` of the concatenation however the input is chunked.
    """

    def __init__(self, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]],
                 special_tokens: list[str] | None = None): ...

    @classmethod
    def from_files(cls, vocab_filepath: str | os.PathLike, merges_filepath: str | os.PathLike,
                   special_tokens: list[str] | None = None) -> Tokenizer: ...

    def encode(self, text: str) -> list[int]: ...

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]: ...

    def decode(self, ids: list[int]) -> str: ...
