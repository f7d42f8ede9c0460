"""BPE of many pre-tokens at once, in numpy: the reference's fast path for text with many new pre-tokens.

A first ``encode`` of 4 MB of prose meets 21,607 distinct pre-tokens; merging them one by one in Python
(``Tokenizer._bpe``) takes about as long as pre-tokenizing and looking up all 925,000 of them. Here they are
merged side by side: one flat array of token ids with the word each belongs to, and every round merges each
word's lowest-ranked pair, every occurrence left to right, exactly as ``_bpe`` does (tests/kit/
test_tokenizer_fast_paths.py compares the two). Only the pairs next to a merge are looked up again.
"""

from __future__ import annotations

import numpy as np

EMPTY = -1
GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the product's top bits index the table


def pair_keys(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return left << 32 | right  # ids are below 2**31 (the Tokenizer checks)


class PairRanks:
    """(left id, right id) -> rank for whole arrays of pairs: an open-addressing hash table, at most a quarter
    full, whose build and lookups probe all keys together (numpy's searchsorted took twice as long)."""

    def __init__(self, left: np.ndarray, right: np.ndarray, ranks: np.ndarray):
        keys = pair_keys(left, right)
        bits = max(4, (4 * len(keys)).bit_length())
        self.mask, self.shift = (1 << bits) - 1, np.uint64(64 - bits)
        self.keys = np.full(1 << bits, EMPTY, np.int64)
        self.ranks = np.zeros(1 << bits, np.int64)
        slot, unplaced = self.home(keys), np.arange(len(keys))
        while unplaced.size:  # each round, the first key aimed at each free slot takes it; the rest move on
            aim = slot[unplaced]
            contenders = unplaced[self.keys[aim] == EMPTY]
            taken, first = np.unique(slot[contenders], return_index=True)
            winners = contenders[first]
            self.keys[taken], self.ranks[taken] = keys[winners], ranks[winners]
            placed = np.zeros(len(keys), bool)
            placed[winners] = True
            unplaced = unplaced[~placed[unplaced]]
            slot[unplaced] = (slot[unplaced] + 1) & self.mask

    def home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * GOLDEN) >> self.shift).astype(np.int64)

    def get(self, left: np.ndarray, right: np.ndarray, default: int) -> np.ndarray:
        keys = pair_keys(left, right)
        slot, todo = self.home(keys), np.arange(len(keys))
        out = np.full(len(keys), default, np.int64)
        while todo.size:
            aim = slot[todo]
            found = self.keys[aim]
            hit = found == keys[todo]
            out[todo[hit]] = self.ranks[aim[hit]]
            todo = todo[~hit & (found != EMPTY)]
            slot[todo] = (slot[todo] + 1) & self.mask
        return out


class BatchBPE:
    """Merges lists of pre-tokens (their UTF-8 bytes) with a tokenizer's merges: ``rank_of`` maps a pair of ids
    to its rank, ``merged_at[rank]`` is the merged id, ``byte_ids[b]`` the id of byte b."""

    def __init__(self, rank_of: dict[tuple[int, int], int], merged_at: list[int], byte_ids: list[int]):
        pairs = np.array(list(rank_of), np.int64).reshape(-1, 2)
        self.ranks = PairRanks(pairs[:, 0], pairs[:, 1], np.fromiter(rank_of.values(), np.int64, len(rank_of)))
        self.merged_at = np.array(merged_at, np.int64)
        self.byte_ids = np.array(byte_ids, np.int64)
        self.no_merge = len(merged_at)  # past every rank, as in Tokenizer._bpe

    def __call__(self, words: list[bytes]) -> list[tuple[int, ...]]:
        if not words:
            return []
        lengths = np.fromiter(map(len, words), np.int64, len(words))
        ids = self.byte_ids[np.frombuffer(b"".join(words), np.uint8)]
        word = np.repeat(np.arange(len(words)), lengths)
        rank = self.pair_ranks(ids, word, np.arange(len(ids)))
        done_words, done_ids = [], []
        while ids.size:
            first = np.empty(ids.size, bool)
            first[0] = True
            np.not_equal(word[1:], word[:-1], out=first[1:])
            starts = np.flatnonzero(first)
            best = np.repeat(np.minimum.reduceat(rank, starts), np.diff(starts, append=ids.size))
            done = best == self.no_merge
            if done.any():  # words with no pair left to merge leave the arrays
                done_words.append(word[done])
                done_ids.append(ids[done])
                ids, word, rank, best = ids[~done], word[~done], rank[~done], best[~done]
                if not ids.size:
                    break
            merge = rank == best
            if (merge[1:] & merge[:-1]).any():
                # A run of merges (x x x with the pair (x, x)) takes every other pair from its left, as _bpe does.
                position = np.arange(ids.size)
                run_start = np.maximum.accumulate(np.where(merge & ~shifted_right(merge), position, 0))
                merge &= (position - run_start) % 2 == 0
            ids[merge] = self.merged_at[rank[merge]]
            stay = ~shifted_right(merge)
            changed = (merge | shifted_left(merge))[stay]  # each merged id and the id before it
            ids, word, rank = ids[stay], word[stay], rank[stay]
            rank[changed] = self.pair_ranks(ids, word, np.flatnonzero(changed))
        return split_by_word(np.concatenate(done_words), np.concatenate(done_ids), len(words))

    def pair_ranks(self, ids: np.ndarray, word: np.ndarray, at: np.ndarray) -> np.ndarray:
        """The rank of the pair starting at each position in ``at``; no_merge at a word's last id."""
        out = np.full(at.size, self.no_merge, np.int64)
        paired = at + 1 < ids.size
        paired[paired] = word[at[paired]] == word[at[paired] + 1]
        left = at[paired]
        out[paired] = self.ranks.get(ids[left], ids[left + 1], self.no_merge)
        return out


def shifted_right(flags: np.ndarray) -> np.ndarray:
    """Each position's left neighbour's flag, False at the first (np.r_ takes microseconds more a call)."""
    out = np.empty_like(flags)
    out[0], out[1:] = False, flags[:-1]
    return out


def shifted_left(flags: np.ndarray) -> np.ndarray:
    """Each position's right neighbour's flag, False at the last."""
    out = np.empty_like(flags)
    out[-1], out[:-1] = False, flags[1:]
    return out


def split_by_word(word: np.ndarray, ids: np.ndarray, count: int) -> list[tuple[int, ...]]:
    """Group ids by word, keeping their order within each word (words leave the arrays whole, in order)."""
    order = np.argsort(word, kind="stable")
    flat = ids[order].tolist()
    ends = np.cumsum(np.bincount(word, minlength=count)).tolist()
    return list(map(tuple, map(flat.__getitem__, map(slice, [0, *ends], ends))))
