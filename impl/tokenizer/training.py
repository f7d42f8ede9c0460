"""Reference byte-level BPE training (A1 §2.4–§2.5): parallel streaming pre-tokenization, then
merges with incrementally updated pair counts and a lazy max-heap.

The normative text is ``spec.tokenizer.train_bpe``.
"""

from __future__ import annotations

import codecs
import heapq
import multiprocessing
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from impl.tokenizer.encoding import pretokens, special_token_list, split_stream

BLOCK = 1 << 20  # bytes read at a time: memory stays bounded whatever the file size
CHUNK = 64 << 20  # target bytes per parallel task
PARALLEL_FROM = 4 << 20  # below this, worker start-up costs more than it saves


def train_bpe(input_path: str | os.PathLike, vocab_size: int, special_tokens: list[str],
              num_workers: int | None = None, progress: bool = False,
              ) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Vocabulary (specials, then the 256 bytes, then one token per merge) and merges in creation order."""
    special_tokens = special_token_list(special_tokens)
    n_merges = vocab_size - 256 - len(special_tokens)
    if n_merges < 0:
        raise ValueError(f"vocab_size={vocab_size} is smaller than the 256 bytes plus {len(special_tokens)} special tokens")
    path = Path(input_path)
    if not path.is_file():
        raise FileNotFoundError(f"training data {path} does not exist")
    counts = count_pretokens(path, special_tokens, num_workers or os.cpu_count() or 1)
    vocab = {i: s.encode("utf-8") for i, s in enumerate(special_tokens)}
    vocab |= {len(vocab) + b: bytes([b]) for b in range(256)}
    merges = learn_merges(counts, vocab, n_merges, progress)
    return vocab, merges


def count_pretokens(path: Path, special_tokens: list[str], num_workers: int) -> Counter[str]:
    """Pre-token counts over the file; tasks split at special-token starts, so none straddles one."""
    bounds = chunk_bounds(path, special_tokens, num_workers)
    tasks = [(path, start, end, special_tokens) for start, end in zip(bounds, bounds[1:])]
    if len(tasks) == 1 or num_workers == 1 or path.stat().st_size < PARALLEL_FROM:
        parts = map(_count_range, tasks)
        return sum(parts, Counter())
    with worker_context().Pool(min(num_workers, len(tasks))) as pool:
        total: Counter[str] = Counter()
        for part in pool.imap_unordered(_count_range, tasks):
            total.update(part)
        return total


def worker_context():
    """fork where there is one: workers start at once and run only regex and dict code."""
    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def chunk_bounds(path: Path, special_tokens: list[str], num_workers: int) -> list[int]:
    """Byte offsets 0 = b₀ < … < b_k = size, each inner one at the start of a special token."""
    markers = [s.encode("utf-8") for s in special_token_list(special_tokens)]
    size = path.stat().st_size
    if not markers:
        return [0, size]  # no safe cut is known: one task, still streamed in blocks
    n_chunks = max(num_workers, -(-size // CHUNK))
    bounds = [0]
    with open(path, "rb") as f:
        for target in range(size // n_chunks, size, max(1, size // n_chunks)):
            f.seek(max(target, bounds[-1] + 1))
            position, window = f.tell(), b""
            while block := f.read(BLOCK):
                window += block
                found = [i for i in (window.find(m) for m in markers) if i >= 0]
                if found:
                    bounds.append(position + min(found))
                    break
                keep = max(len(m) for m in markers) - 1  # a marker may straddle two blocks
                position, window = position + len(window) - keep, window[len(window) - keep:]
            else:
                break
    return sorted(set(bounds) - {size}) + [size]


def _count_range(task: tuple[Path, int, int, list[str]]) -> Counter[str]:
    path, start, end, special_tokens = task
    counts: Counter[str] = Counter()
    for piece, is_special in split_stream(_read_text(path, start, end), special_tokens):
        if not is_special:  # specials are never counted, so never merged into or across
            counts.update(pretokens(piece))
    return counts


def _read_text(path: Path, start: int, end: int) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    with open(path, "rb") as f:
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            block = f.read(min(BLOCK, remaining))
            if not block:
                break
            # The decoder's error offsets count from the bytes it still holds from the previous block.
            offset = f.tell() - len(block) - len(decoder.getstate()[0])
            remaining -= len(block)
            try:
                yield decoder.decode(block)
            except UnicodeDecodeError as error:
                raise not_utf8(path, offset, error) from None
    try:
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise not_utf8(path, end - len(decoder.getstate()[0]), error) from None


class NotUtf8Error(ValueError):
    """Input bytes that are not UTF-8; the message names the file and the offset of the first bad byte."""


def not_utf8(path: Path, offset: int, error: UnicodeDecodeError) -> NotUtf8Error:
    """``offset``: that of the bytes ``error`` was raised on."""
    return NotUtf8Error(f"{path} is not UTF-8 text: byte 0x{error.object[error.start]:02x} at offset "
                      f"{offset + error.start} ({error.reason}); convert it, e.g. `iconv -f latin1 -t utf-8`")


def merge_sites(word: list[int], a: int, b: int) -> list[int]:
    """Left-to-right, non-overlapping positions i with word[i:i+2] == [a, b] (list.index scans in C)."""
    sites, i, last = [], 0, len(word) - 1
    try:
        while True:
            i = word.index(a, i, last)
            if word[i + 1] == b:
                sites.append(i)
                i += 2
            else:
                i += 1
    except ValueError:
        return sites


class Greater:
    """Heap key that orders (bytes, bytes) pairs descending, so the min-heap pops the greatest pair."""

    __slots__ = ("pair",)

    def __init__(self, pair: tuple[bytes, bytes]):
        self.pair = pair

    def __lt__(self, other: Greater) -> bool:
        return self.pair > other.pair

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Greater) and self.pair == other.pair


def learn_merges(counts: Counter[str], vocab: dict[int, bytes], n_merges: int, progress: bool = False,
                 ) -> list[tuple[bytes, bytes]]:
    """Merge the most frequent pair (ties: the lexicographically greater bytes pair) n_merges times.

    Adds one token per merge to ``vocab``. Only the words that contain the merged pair are
    touched, and in them only the pairs next to a merge site: their counts are updated and
    re-pushed on a lazy heap (stale entries are skipped when popped).
    """
    first_byte = len(vocab) - 256  # the byte tokens are the vocabulary's last 256 entries so far
    words = [[first_byte + b for b in word.encode("utf-8")] for word in counts]
    freq = list(counts.values())
    # defaultdicts, not Counter and setdefault: their lookups, inserts and deletes stay in C (Counter's __delitem__
    # is Python code; setdefault builds a set on every call).
    pair_count: defaultdict[tuple[int, int], int] = defaultdict(int)
    pair_words: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for w, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_count[pair] += freq[w]
            pair_words[pair].add(w)
    heap = [(-c, Greater((vocab[a], vocab[b])), a, b) for (a, b), c in pair_count.items()]
    heapq.heapify(heap)
    merges: list[tuple[bytes, bytes]] = []
    bar = tqdm(total=n_merges, desc="merges", disable=not progress)
    while len(merges) < n_merges and heap:
        negative, _, a, b = heapq.heappop(heap)
        if pair_count.get((a, b), 0) != -negative or negative == 0:
            continue  # stale entry: the count changed after it was pushed
        new_id = len(vocab)
        vocab[new_id] = vocab[a] + vocab[b]
        merges.append((vocab[a], vocab[b]))
        bar.update()
        changed: set[tuple[int, int]] = set()
        for w in pair_words.pop((a, b), ()):
            word, f = words[w], freq[w]
            if a != b and word.count(a) == 1:  # the common case, written out: one site s, its two neighbours
                s = word.index(a)
                if s + 1 == len(word) or word[s + 1] != b:
                    continue  # stale membership: an earlier merge already consumed this pair here
                if s:
                    gone, made = (word[s - 1], a), (word[s - 1], new_id)
                    pair_count[gone] -= f
                    pair_count[made] += f
                    pair_words[made].add(w)
                    changed.add(gone)
                    changed.add(made)
                if s + 2 < len(word):
                    gone, made = (b, word[s + 2]), (new_id, word[s + 2])
                    pair_count[gone] -= f
                    pair_count[made] += f
                    pair_words[made].add(w)
                    changed.add(gone)
                    changed.add(made)
                word[s:s + 2] = (new_id,)
                continue
            sites = merge_sites(word, a, b)
            if not sites:
                continue
            merged = []
            start = 0
            for site in sites:
                merged += word[start:site]
                merged.append(new_id)
                start = site + 2
            merged += word[start:]
            # Pairs starting at s-1, s, s+1 of the old word vanish; at t-1 and t of the new one appear
            # (the k-th site s lands at t = s - k, each earlier merge having shortened the word by one).
            last_old, last_new = len(word) - 2, len(merged) - 2
            for j in {j for s in sites for j in (s - 1, s, s + 1) if 0 <= j <= last_old}:
                pair = (word[j], word[j + 1])
                pair_count[pair] -= f
                changed.add(pair)
            for t in {t for k, s in enumerate(sites) for t in (s - k - 1, s - k) if 0 <= t <= last_new}:
                pair = (merged[t], merged[t + 1])
                pair_count[pair] += f
                pair_words[pair].add(w)
                changed.add(pair)
            words[w] = merged
        del pair_count[(a, b)]
        for pair in changed - {(a, b)}:
            if pair_count[pair] > 0:
                heapq.heappush(heap, (-pair_count[pair], Greater((vocab[pair[0]], vocab[pair[1]])), *pair))
            else:
                del pair_count[pair]
    bar.close()
    return merges
