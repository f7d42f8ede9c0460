"""Reference byte-level BPE tokenizer: encode, decode, stream, and the course's file format (A1 §2.6).

The normative text is in ``spec/tokenizer.py``; training lives in ``impl/tokenizer/training.py``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import regex

# GPT-2's pre-tokenizer (A1 §2.4), as in tiktoken's r50k/gpt2 encoding.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
PRETOKEN = regex.compile(GPT2_PATTERN)
WHITESPACE = regex.compile(r"\s")
CACHE_ENTRIES = 1 << 16  # memoized pre-tokens per tokenizer


def special_token_list(special_tokens: Iterable[str] | None) -> list[str]:
    """The special tokens without repeats, in order; refuses any that is empty or not a string.

    An empty special token would match between any two characters: an id between every two,
    and streams and training that never end.
    """
    specials = list(special_tokens or [])
    for special in specials:
        if not isinstance(special, str) or not special:
            raise ValueError(f"special tokens must be non-empty strings, got {special!r}")
    return list(dict.fromkeys(specials))


def special_token_pattern(special_tokens: Iterable[str]) -> regex.Pattern | None:
    """Alternation of the escaped specials, longest first, so overlapping ones resolve to the longest."""
    specials = sorted(set(special_tokens), key=len, reverse=True)
    return regex.compile("|".join(regex.escape(s) for s in specials)) if specials else None


def split_stream(chunks: Iterable[str], special_tokens: Iterable[str]) -> Iterator[tuple[str, bool]]:
    """Cut a stream of text chunks into pieces that can be pre-tokenized one by one.

    Yields ``(piece, is_special)``. A text piece never ends inside a pre-token or inside a
    possible special token, so the result does not depend on where the chunks were cut:
    the last pre-token of the buffer (which more text could extend) and any tail that could
    start a special token are held back until more text arrives or the stream ends.
    """
    specials = sorted(special_token_list(special_tokens), key=len, reverse=True)
    special_re = special_token_pattern(specials)
    buffer = ""
    for chunk in chunks:
        buffer += chunk
        while special_re is not None and (match := special_re.search(buffer)):
            rest = buffer[match.start():]
            if any(len(s) > len(rest) and s.startswith(rest) for s in specials):
                break  # a longer special token may still complete here
            if match.start():
                yield buffer[:match.start()], False
            yield match.group(), True
            buffer = buffer[match.end():]
        cut = _safe_cut(buffer, specials)
        if cut:
            yield buffer[:cut], False
            buffer = buffer[cut:]
    yield from _final_split(buffer, special_re)


def _safe_cut(text: str, specials: list[str]) -> int:
    r"""How much of ``text`` is final: its pre-tokens cannot change whatever text follows.

    Text that may start a special token is held back, and of the rest, the last two
    pre-tokens: a pre-token's extent can depend on up to two characters after it (the
    contraction ``'ll``, the lookahead of ``\s+(?!\S)``). A cut never follows whitespace,
    since how a run of whitespace splits depends on the first character after the run.
    """
    limit = len(text)
    for special in specials:
        for k in range(min(len(special) - 1, len(text)), 0, -1):
            if text.endswith(special[:k]):
                limit = min(limit, len(text) - k)
                break
    # endpos makes the regex see text[:limit] as the whole string, as it will be if a special follows.
    starts = [match.start() for match in PRETOKEN.finditer(text, 0, limit)]
    i = len(starts) - 2
    while i > 0 and WHITESPACE.match(text, starts[i] - 1):
        i -= 1
    return starts[i] if i > 0 else 0


def _final_split(text: str, special_re: regex.Pattern | None) -> Iterator[tuple[str, bool]]:
    start = 0
    for match in special_re.finditer(text) if special_re is not None else ():
        if match.start() > start:
            yield text[start:match.start()], False
        yield match.group(), True
        start = match.end()
    if start < len(text):
        yield text[start:], False


class Tokenizer:
    """Byte-level BPE: merges applied in rank order within each pre-token; specials split out first."""

    def __init__(self, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]],
                 special_tokens: list[str] | None = None):
        self.special_tokens = special_token_list(special_tokens)
        self.vocab = dict(vocab)
        for special in self.special_tokens:  # a special absent from the vocabulary gets the next free id
            if special.encode() not in set(self.vocab.values()):
                self.vocab[max(self.vocab, default=-1) + 1] = special.encode()
        self.id_of: dict[bytes, int] = {token: i for i, token in self.vocab.items()}
        missing = [bytes([b]) for b in range(256) if bytes([b]) not in self.id_of]
        if missing:
            raise ValueError(f"the vocabulary lacks {len(missing)} single bytes (e.g. {missing[0]!r}): "
                             "byte-level BPE needs all 256 to encode any text")
        self.special_ids = {s: self.id_of[s.encode()] for s in self.special_tokens}
        self.byte_ids = [self.id_of[bytes([b])] for b in range(256)]
        # (left id, right id) -> (rank, merged id): rank = position in the merge list.
        self.merge_of: dict[tuple[int, int], tuple[int, int]] = {}
        for rank, (left, right) in enumerate(merges):
            try:
                pair, merged = (self.id_of[left], self.id_of[right]), self.id_of[left + right]
            except KeyError as error:
                raise ValueError(f"merge {rank} ({left!r}, {right!r}) uses a token missing from the vocabulary") from error
            self.merge_of.setdefault(pair, (rank, merged))
        self.merges = list(merges)
        # Pre-tokens repeat (Zipf): memoize their BPE in a plain dict (faster than lru_cache),
        # emptied when full so that streaming stays in bounded memory.
        self._cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_files(cls, vocab_filepath: str | os.PathLike, merges_filepath: str | os.PathLike,
                   special_tokens: list[str] | None = None) -> Tokenizer:
        """Load the course's format: GPT-2-style vocab.json and merges.txt (byte-to-unicode strings)."""
        vocab, merges = read_gpt2_files(vocab_filepath, merges_filepath)
        return cls(vocab, merges, special_tokens)

    def save(self, vocab_filepath: str | os.PathLike, merges_filepath: str | os.PathLike) -> None:
        write_gpt2_files(self.vocab, self.merges, vocab_filepath, merges_filepath)

    def _bpe(self, pretoken: str) -> tuple[int, ...]:
        ids = [self.byte_ids[b] for b in pretoken.encode("utf-8")]
        while len(ids) > 1:
            best = min(((self.merge_of[p][0], i) for i, p in enumerate(zip(ids, ids[1:])) if p in self.merge_of),
                       default=None)
            if best is None:
                break
            pair = (ids[best[1]], ids[best[1] + 1])
            merged, out, i = self.merge_of[pair][1], [], 0
            while i < len(ids):  # merge every occurrence of the best pair, left to right
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                    out.append(merged)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return tuple(ids)

    def _encode_text(self, text: str, out: list[int]) -> None:
        """Append the ids of a stretch of text without special tokens."""
        cache = self._cache
        for pretoken in PRETOKEN.findall(text):
            ids = cache.get(pretoken)
            if ids is None:
                if len(cache) >= CACHE_ENTRIES:
                    cache.clear()
                ids = cache[pretoken] = self._bpe(pretoken)
            out.extend(ids)

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for piece, is_special in _final_split(text, special_token_pattern(self.special_tokens)):
            if is_special:
                out.append(self.special_ids[piece])
            else:
                self._encode_text(piece, out)
        return out

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        """Lazily encode a stream of strings (e.g. a file's lines) in bounded memory."""
        for piece, is_special in split_stream(iterable, self.special_tokens):
            if is_special:
                yield self.special_ids[piece]
            else:
                ids: list[int] = []
                self._encode_text(piece, ids)
                yield from ids

    def decode(self, ids: Iterable[int]) -> str:
        try:
            data = b"".join(self.vocab[i] for i in ids)
        except KeyError as error:
            raise ValueError(f"token id {error.args[0]} is not in the vocabulary of {len(self.vocab)} tokens") from None
        return data.decode("utf-8", errors="replace")


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for every byte, used by vocab.json and merges.txt."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _to_text(token: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


@functools.cache
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def _from_text(text: str) -> bytes:
    inverse = unicode_to_bytes()
    try:
        return bytes(inverse[c] for c in text)
    except KeyError as error:
        raise ValueError(f"{text!r} is not in GPT-2's byte-to-unicode alphabet (character {error.args[0]!r})") from None


def read_gpt2_files(vocab_filepath, merges_filepath) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    with open(vocab_filepath, encoding="utf-8") as f:
        vocab = {int(i): _from_text(token) for token, i in json.load(f).items()}
    merges = []
    with open(merges_filepath, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#version"):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{merges_filepath}:{number}: expected two tokens separated by one space, got {line!r}")
            merges.append((_from_text(parts[0]), _from_text(parts[1])))
    return vocab, merges


def write_gpt2_files(vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]], vocab_filepath,
                     merges_filepath) -> None:
    vocab_text, merges_text = gpt2_files_text(vocab, merges)
    Path(vocab_filepath).write_text(vocab_text, encoding="utf-8")
    Path(merges_filepath).write_text(merges_text, encoding="utf-8")


def gpt2_files_text(vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]]) -> tuple[str, str]:
    """The content of vocab.json and merges.txt in GPT-2's format (byte-to-unicode strings)."""
    vocab_text = json.dumps({_to_text(token): i for i, token in sorted(vocab.items())}, ensure_ascii=False, indent=0)
    merges_text = "#version: 0.2\n" + "".join(f"{_to_text(a)} {_to_text(b)}\n" for a, b in merges)
    return vocab_text, merges_text
