"""The tokenizer's mutants (spec/tokenizer.py): BPE training and the Tokenizer.

The reference's internals change as it is optimized, so the tokenizer mutants use only what the spec pins: the
constructors' arguments, the public methods and GPT2_PATTERN. (A mutant that crashed on a renamed internal would
fail tests and pass for rejected; test_mutants.py also checks that each one runs and behaves differently from
the reference.) The training mutants do swap one piece of impl/tokenizer/training.py for the call (mock.patch.object,
which raises if the piece is gone).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from unittest import mock

import regex

import impl as reference
import impl.tokenizer.training as reference_training
import spec.tokenizer
from tests.kit.mutants.common import Mutant


GPT2_PRETOKEN = regex.compile(spec.tokenizer.GPT2_PATTERN)
PATTERN_WITHOUT_CONTRACTIONS = regex.compile(spec.tokenizer.GPT2_PATTERN.removeprefix("'(?:[sdmt]|ll|ve|re)|"))
PATTERN_WITHOUT_LOOKAHEAD = regex.compile(spec.tokenizer.GPT2_PATTERN.replace(r"|\s+(?!\S)|", "|"))
assert GPT2_PRETOKEN.pattern != PATTERN_WITHOUT_CONTRACTIONS.pattern != PATTERN_WITHOUT_LOOKAHEAD.pattern


class Smaller(reference_training.Greater):
    """The heap key reversed: among equal counts the lexicographically *smaller* pair pops first."""

    def __lt__(self, other):
        return self.pair < other.pair


def _train_bpe_smaller_tie_break(input_path, vocab_size, special_tokens):
    with mock.patch.object(reference_training, "Greater", Smaller):
        return reference.train_bpe(input_path, vocab_size, special_tokens)


def _train_bpe_specials_as_text(input_path, vocab_size, special_tokens):
    specials = list(dict.fromkeys(special_tokens))  # not split out: pre-tokenized, counted, merged like text
    vocab, merges = reference.train_bpe(input_path, vocab_size - len(specials), [])
    return vocab | {len(vocab) + k: s.encode("utf-8") for k, s in enumerate(specials)}, merges


def _train_bpe_specials_counted(input_path, vocab_size, special_tokens):
    count = reference_training.count_pretokens  # split out, but each occurrence also counted as a word

    def count_with_specials(path, specials, *args, **kwargs):
        counts = count(path, specials, *args, **kwargs)
        text = Path(path).read_text(encoding="utf-8")
        counts.update({s: text.count(s) for s in specials if s in text})
        return counts

    with mock.patch.object(reference_training, "count_pretokens", count_with_specials):
        return reference.train_bpe(input_path, vocab_size, special_tokens)


def _train_bpe_one_merge_too_many(input_path, vocab_size, special_tokens):
    return reference.train_bpe(input_path, vocab_size + 1, special_tokens)  # vocab_size − 255 − #specials merges


def _train_bpe_no_contractions(input_path, vocab_size, special_tokens):
    with mock.patch.object(reference_training, "pretokens", PATTERN_WITHOUT_CONTRACTIONS.findall):
        return reference.train_bpe(input_path, vocab_size, special_tokens)


class TokenizerVariant(reference.Tokenizer):
    """``encode`` written out plainly from the spec, with knobs; each mutant below turns exactly one.
    ``decode`` and ``encode_iterable`` stay the reference's."""

    shortest_special_first = False
    pattern = GPT2_PRETOKEN
    leftmost_merge = False  # merge the leftmost mergeable pair instead of the pair of lowest rank

    def __init__(self, vocab, merges, special_tokens=None):
        super().__init__(vocab, merges, special_tokens)
        self.rank: dict[tuple[bytes, bytes], int] = {}
        for rank, pair in enumerate(merges):
            self.rank.setdefault(pair, rank)
        self.id_of_token = {token: i for i, token in vocab.items()}
        specials = sorted(set(special_tokens or []), key=len, reverse=not self.shortest_special_first)
        self.special_re = regex.compile("|".join(map(regex.escape, specials))) if specials else None
        self.special_id = {s: reference.Tokenizer.encode(self, s)[0] for s in specials}
        self.memo: dict[str, list[int]] = {}

    def encode(self, text):
        ids, start = [], 0
        for match in self.special_re.finditer(text) if self.special_re else ():
            ids += self.encode_text(text[start:match.start()]) + [self.special_id[match.group()]]
            start = match.end()
        return ids + self.encode_text(text[start:])

    def encode_text(self, text):
        return [i for pretoken in self.pattern.findall(text) for i in self.bpe(pretoken)]

    def bpe(self, pretoken):
        if pretoken not in self.memo:
            parts = [bytes([b]) for b in pretoken.encode("utf-8")]
            while ranked := [(self.rank[p], i) for i, p in enumerate(zip(parts, parts[1:])) if p in self.rank]:
                if self.leftmost_merge:
                    i = ranked[0][1]
                    parts[i:i + 2] = [parts[i] + parts[i + 1]]
                    continue
                pair, merged, i = parts[min(ranked)[1]:min(ranked)[1] + 2], [], 0
                while i < len(parts):  # every occurrence of the best pair, left to right
                    if parts[i:i + 2] == pair:
                        merged.append(pair[0] + pair[1])
                        i += 2
                    else:
                        merged.append(parts[i])
                        i += 1
                parts = merged
            self.memo[pretoken] = [self.id_of_token[p] for p in parts]
        return self.memo[pretoken]


class TokenizerShortestSpecialFirst(TokenizerVariant):
    shortest_special_first = True  # <|a|> matched before <|a|><|a|>: the longer one never matches


class TokenizerLeftmostMerge(TokenizerVariant):
    leftmost_merge = True


class TokenizerNoContractions(TokenizerVariant):
    pattern = PATTERN_WITHOUT_CONTRACTIONS  # "don't" -> "don", "'", "t" instead of "don", "'t"


class TokenizerNoLookahead(TokenizerVariant):
    pattern = PATTERN_WITHOUT_LOOKAHEAD  # "a  b" -> "a", "  ", "b" instead of "a", " ", " b"


class TokenizerStrictDecode(reference.Tokenizer):
    def __init__(self, vocab, merges, special_tokens=None):
        super().__init__(vocab, merges, special_tokens)
        self.token_of = dict(vocab) | {reference.Tokenizer.encode(self, s)[0]: s.encode()
                                       for s in special_tokens or []}

    def decode(self, ids):
        ids = list(ids)
        super().decode(ids)  # the reference's checks of the ids
        return b"".join(self.token_of[i] for i in ids).decode("utf-8")  # errors="strict": raises on partial UTF-8


class TokenizerChunksEncodedAlone(reference.Tokenizer):
    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        for chunk in iterable:
            yield from self.encode(chunk)


class TokenizerEagerIterable(reference.Tokenizer):
    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        return iter(self.encode("".join(iterable)))  # right ids, but the whole input in memory at once


class TokenizerDropsTrailingWhitespace(reference.Tokenizer):
    def encode(self, text):
        return super().encode(text.rstrip())


class TokenizerUnregisteredSpecial(reference.Tokenizer):
    """``<|endoftext|>`` split out whenever the vocabulary has it, registered or not."""

    def __init__(self, vocab, merges, special_tokens=None):
        super().__init__(vocab, merges, special_tokens)
        self.registered = "<|endoftext|>" in (special_tokens or [])
        self.eot = next((i for i, token in vocab.items() if token == b"<|endoftext|>"), None)

    def encode(self, text):
        if self.registered or self.eot is None:
            return super().encode(text)
        parts = [reference.Tokenizer.encode(self, part) for part in text.split("<|endoftext|>")]
        return [i for k, part in enumerate(parts) for i in [self.eot] * (k > 0) + part]


MUTANTS: list[Mutant] = [
    Mutant("bpe_smaller_pair_tie_break", "train_bpe", "count ties go to the lexicographically smaller pair",
           _train_bpe_smaller_tie_break),
    Mutant("bpe_merges_across_specials", "train_bpe", "specials not split out: pre-tokenized and merged like text",
           _train_bpe_specials_as_text),
    Mutant("bpe_specials_counted", "train_bpe", "specials split out but counted as words: their pairs get merged",
           _train_bpe_specials_counted),
    Mutant("bpe_one_merge_too_many", "train_bpe", "vocab_size − 255 − #specials merges (off by one)",
           _train_bpe_one_merge_too_many),
    Mutant("bpe_no_contractions", "train_bpe", "pre-tokenizer without the '(?:[sdmt]|ll|ve|re) alternative",
           _train_bpe_no_contractions),
    Mutant("tokenizer_shortest_special_first", "Tokenizer", "overlapping specials: the shortest matched first (encode)",
           TokenizerShortestSpecialFirst),
    Mutant("tokenizer_strict_decode", "Tokenizer", "decode raises on invalid UTF-8 instead of U+FFFD",
           TokenizerStrictDecode),
    Mutant("tokenizer_leftmost_merge", "Tokenizer", "encode merges the leftmost mergeable pair, not the lowest rank",
           TokenizerLeftmostMerge),
    Mutant("tokenizer_no_contractions", "Tokenizer",
           "encode's pre-tokenizer lacks the '(?:[sdmt]|ll|ve|re) alternative", TokenizerNoContractions),
    Mutant("tokenizer_no_whitespace_lookahead", "Tokenizer", r"encode's pre-tokenizer lacks \s+(?!\S): "
           "a run of spaces keeps its last space", TokenizerNoLookahead),
    Mutant("tokenizer_chunks_encoded_alone", "Tokenizer", "encode_iterable encodes each chunk on its own: "
           "tokens split at chunk boundaries", TokenizerChunksEncodedAlone),
    Mutant("tokenizer_eager_iterable", "Tokenizer", "encode_iterable joins the whole input first: memory unbounded",
           TokenizerEagerIterable),
    Mutant("tokenizer_drops_trailing_whitespace", "Tokenizer", "encode drops the text's trailing whitespace",
           TokenizerDropsTrailingWhitespace),
    Mutant("tokenizer_unregistered_special", "Tokenizer", "<|endoftext|> split out as a special even when not "
           "registered", TokenizerUnregisteredSpecial),
]
