"""Reference byte-level BPE tokenizer: encode, decode, stream, and the course's file format (A1 §2.6).

The normative text is in ``spec/tokenizer.py``; training lives in ``impl/tokenizer/training.py``.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import regex

from impl.tokenizer.batch_bpe import BatchBPE

# GPT-2's pre-tokenizer (A1 §2.4), as in tiktoken's r50k/gpt2 encoding.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
PRETOKEN = regex.compile(GPT2_PATTERN)
# The same pattern for ASCII text, in the standard library's re, which runs it about twice as fast as regex: in
# ASCII, \p{L} is [A-Za-z], \p{N} is [0-9] and regex's \s is [\t\n\v\f\r ] (re's \s would add \x1c-\x1f).
_SPACE = r"\t\n\x0b\x0c\r "
ASCII_PRETOKEN = re.compile(
    rf"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]+| ?[0-9]+| ?[^{_SPACE}A-Za-z0-9]+|[{_SPACE}]+(?![^{_SPACE}])|[{_SPACE}]+""")
# An ASCII whitespace character after a non-space always starts a pre-token, whatever follows: no pre-token holds a
# non-space then a space, and none looks behind; so text cut there pre-tokenizes as the whole did. (The lookbehind
# is re's \S, which excludes every character regex's \s takes: tests/kit/test_tokenizer_fast_paths.py.)
PIECE_CUT = re.compile(rf"(?<=\S)[{_SPACE}]")
LAST_PIECE_CUT = re.compile(rf"(?s:.*)(?<=\S)[{_SPACE}]")  # greedy: the match ends just after the last PIECE_CUT
PIECE_CHARS = 1 << 16
CACHE_ENTRIES = 1 << 16  # memoized pre-tokens per tokenizer
# New pre-tokens from which merging them together in numpy (BatchBPE) is faster than one by one: even at 256 with
# GPT-2's merges on the 2-core machine (1.10 against 1.08 ms), 1.4x at 512, 2.0x at 1024.
BATCH_WORDS = 256
GROUP_CHARS = 1 << 20  # encode pre-tokenizes this much text, then merges its new pre-tokens together


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
    held_back = special_prefixes(specials)
    buffer = ""
    for chunk in chunks:
        buffer += chunk
        start = 0  # the buffer is cut once per chunk, not once per special: copying its rest each time is quadratic
        while special_re is not None and (match := special_re.search(buffer, start)):
            rest = len(buffer) - match.start()
            if any(len(s) > rest and s.startswith(buffer[match.start():]) for s in specials):
                break  # a longer special token may still complete here
            if match.start() > start:
                yield buffer[start:match.start()], False
            yield match.group(), True
            start = match.end()
        buffer = buffer[start:]
        cut = _safe_cut(buffer, held_back)
        if cut:
            yield buffer[:cut], False
            buffer = buffer[cut:]
    yield from _final_split(buffer, special_re)


def special_prefixes(specials: Iterable[str]) -> tuple[str, ...]:
    """Every proper prefix of the special tokens, longest first: the tails a stream's buffer holds back."""
    return tuple(sorted({s[:k] for s in specials for k in range(1, len(s))}, key=len, reverse=True))


def _safe_cut(text: str, held_back: tuple[str, ...]) -> int:
    """How much of ``text`` is final: its pre-tokens cannot change whatever text follows.

    A tail that may start a special token (one of ``held_back``, the specials' proper prefixes, longest first) is held
    back; the cut is the last PIECE_CUT before it (0 if none). LAST_PIECE_CUT finds it going back from the end, so
    that neither a long buffer nor a stream of short lines costs more than the text after the cut.
    """
    limit = len(text)
    if held_back and text.endswith(held_back):
        limit -= len(next(prefix for prefix in held_back if text.endswith(prefix)))
    last = LAST_PIECE_CUT.match(text, 0, limit)
    return last.end() - 1 if last else 0


def pretokens(text: str) -> list[str]:
    """GPT-2's pre-tokens of ``text``: ASCII stretches through the faster ASCII_PRETOKEN, the rest through
    PRETOKEN, the text cut only where a pre-token starts (PIECE_CUT)."""
    if text.isascii():
        return ASCII_PRETOKEN.findall(text)
    out: list[str] = []
    start = 0
    while start < len(text):
        cut = PIECE_CUT.search(text, start + PIECE_CHARS)
        end = cut.start() if cut else len(text)
        piece = text[start:end]
        out += (ASCII_PRETOKEN if piece.isascii() else PRETOKEN).findall(piece)
        start = end
    return out


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
        if self.vocab and not 0 <= min(self.vocab) <= max(self.vocab) < 1 << 31:
            raise ValueError(f"token ids must lie in [0, 2**31), got {min(self.vocab)} to {max(self.vocab)}")
        self.id_of: dict[bytes, int] = {token: i for i, token in self.vocab.items()}
        missing = [bytes([b]) for b in range(256) if bytes([b]) not in self.id_of]
        if missing:
            raise ValueError(f"the vocabulary lacks {len(missing)} single bytes (e.g. {missing[0]!r}): "
                             "byte-level BPE needs all 256 to encode any text")
        self.special_ids = {s: self.id_of[s.encode()] for s in self.special_tokens}
        self.byte_ids = [self.id_of[bytes([b])] for b in range(256)]
        # (left id, right id) -> rank (the position in the merge list; a repeated merge keeps its first), and rank ->
        # the merged id: a rank names one pair, so the BPE loop finds the merged token by list index, not by hashing.
        self.rank_of: dict[tuple[int, int], int] = {}
        self.merged_at: list[int] = [-1] * len(merges)  # -1: the rank repeats an earlier merge
        for rank, (left, right) in enumerate(merges):
            try:
                pair, merged = (self.id_of[left], self.id_of[right]), self.id_of[left + right]
            except KeyError as error:
                raise ValueError(f"merge {rank} ({left!r}, {right!r}) uses a token missing from the vocabulary") from error
            if pair not in self.rank_of:
                self.rank_of[pair], self.merged_at[rank] = rank, merged
        self.merges = list(merges)
        self._batch_bpe = BatchBPE(self.rank_of, self.merged_at, self.byte_ids)  # the same merges, as numpy tables
        # Pre-tokens repeat (Zipf): memoize their BPE in a plain dict (faster than lru_cache), emptied when a
        # call's new pre-tokens would overfill it, so that streaming stays in bounded memory.
        self._cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_files(cls, vocab_filepath: str | os.PathLike, merges_filepath: str | os.PathLike,
                   special_tokens: list[str] | None = None) -> Tokenizer:
        """Load the course's format: GPT-2-style vocab.json and merges.txt (byte-to-unicode strings)."""
        vocab, merges = read_gpt2_files(vocab_filepath, merges_filepath)
        return cls(vocab, merges, special_tokens)

    def save(self, vocab_filepath: str | os.PathLike, merges_filepath: str | os.PathLike) -> None:
        write_gpt2_files(self.vocab, self.merges, vocab_filepath, merges_filepath)

    def _bpe(self, data: bytes) -> tuple[int, ...]:
        """Merge the pair of lowest rank, every occurrence left to right, until no pair has a merge. ``ranks[i]`` is
        the rank of (ids[i], ids[i + 1]) (``no_merge``, past every rank, if none; a rank names one pair): a pair
        that occurs once, the common case, changes only its two neighbours' ranks."""
        rank_of, no_merge, merged_at = self.rank_of.get, len(self.merges), self.merged_at
        ids = list(map(self.byte_ids.__getitem__, data))
        ranks = list(map(rank_of, zip(ids, ids[1:]), itertools.repeat(no_merge)))
        while ranks:
            best = min(ranks)
            if best == no_merge:
                break
            first = ranks.index(best)
            merged = merged_at[best]
            if ranks.count(best) == 1:
                ids[first:first + 2] = (merged,)
                del ranks[first]
                if first:
                    ranks[first - 1] = rank_of((ids[first - 1], merged), no_merge)
                if first < len(ranks):
                    ranks[first] = rank_of((merged, ids[first + 1]), no_merge)
                continue
            out, i = ids[:first], first
            while i < len(ids):
                if i < len(ranks) and ranks[i] == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
            ranks = list(map(rank_of, zip(ids, ids[1:]), itertools.repeat(no_merge)))
        return tuple(ids)

    def _encode_pieces(self, pieces: list[tuple[str, bool]], out: list[int]) -> None:
        """Append the ids of ``(piece, is_special)`` pieces, each pre-token looked up in the cache. At the first
        pre-token not there, the new pre-tokens of this piece and all after it are merged together (in numpy
        where there are many: batch_bpe), and cached."""
        lookup = self._cache.__getitem__
        words: list[list[str]] = []  # the pieces' pre-tokens, from the first miss on
        for index, (piece, is_special) in enumerate(pieces):
            if is_special:
                out.append(self.special_ids[piece])
                continue
            piece_words = words[index] if words else pretokens(piece)
            mark = len(out)
            try:
                for ids in map(lookup, piece_words):
                    out.extend(ids)
            except KeyError:
                del out[mark:]
                words = [[]] * index + [piece_words]  # the pieces before are done
                words += [[] if special else pretokens(text) for text, special in pieces[index + 1:]]
                self._learn(words[index:])
                for ids in map(lookup, piece_words):
                    out.extend(ids)

    def _learn(self, words: list[list[str]]) -> None:
        """Merge and cache the pre-tokens of ``words`` that are not cached yet; if they would overfill the cache,
        empty it and cache all of ``words``."""
        cache = self._cache
        new = set().union(*words).difference(cache)
        if len(cache) + len(new) > CACHE_ENTRIES:
            cache.clear()
            new = set().union(*words)
        new = list(new)
        utf8 = [pretoken.encode("utf-8") for pretoken in new]
        cache.update(zip(new, self._batch_bpe(utf8) if len(new) >= BATCH_WORDS else map(self._bpe, utf8)))

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        group: list[tuple[str, bool]] = []
        size = 0
        for piece in _final_split(text, special_token_pattern(self.special_tokens)):
            group.append(piece)
            size += len(piece[0])
            if size >= GROUP_CHARS:
                self._encode_pieces(group, out)
                group, size = [], 0
        self._encode_pieces(group, out)
        return out

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        """Lazily encode a stream of strings (e.g. a file's lines) in bounded memory: each piece as it comes."""
        for piece in split_stream(iterable, self.special_tokens):
            ids: list[int] = []
            self._encode_pieces([piece], ids)
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
