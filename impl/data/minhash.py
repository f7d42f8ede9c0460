"""Fuzzy document deduplication with MinHash and LSH (A4 §3.2; Leskovec et al., Mining of Massive Datasets, ch. 3).

Everything after normalisation is numpy on 64-bit hashes. Each word is hashed once (MurmurHash3); a shingle (a
word n-gram) is the sum of its words' hashes times n fixed odd constants, one per position (a polynomial hash,
so that "a b" and "b a" differ), computed for every n-gram of a document in n vectorised steps. The k hash
functions of the signature are random affine bijections of 32-bit words (MinHasher): no modulo by a prime, which in
numpy costs more than everything else. The
true Jaccard similarity of candidates is computed on the sets of shingle hashes: two different shingles of a
pair share a 64-bit hash with probability about n²/2^64 (< 10^-9 for 10^5 shingles).
"""

from __future__ import annotations

import os
import random
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import mmh3
import numpy as np
import regex

from impl.data.dedup import output_paths

# Accents (nonspacing combining marks, once NFD has split them off their letters) and punctuation go.
MARKS_AND_PUNCTUATION = regex.compile(r"[\p{Mn}\p{P}]+")
WHITESPACE = regex.compile(r"\s+")
# One odd constant per position in an n-gram (the first is 1: a 1-gram is its word's hash); fixed, not seeded,
# so that shingle hashes, and with them the Jaccard similarities, do not depend on the seed.
POSITION_CONSTANTS = np.random.default_rng(20240501).integers(1, 2**63, size=64, dtype=np.uint64) * 2 + 1
POSITION_CONSTANTS[0] = 1
# normalize() on ASCII bytes: upper case to lower, punctuation deleted, and \x1c-\x1f (str.split() splits on them,
# bytes.split() does not; no other character differs between the two) to spaces. UTF-8's non-ASCII bytes pass.
ASCII_PUNCTUATION = bytes(c for c in range(128) if MARKS_AND_PUNCTUATION.match(chr(c)))
ASCII_NORMALIZATION = bytes.maketrans(bytes(range(65, 91)) + b"\x1c\x1d\x1e\x1f", bytes(range(97, 123)) + b"    ")


def normalize(text: str) -> str:
    """NFD, accents removed, lower case, punctuation removed, whitespace collapsed (Penedo et al. 2023): the variants
    of one page that differ only in these shingle alike."""
    text = MARKS_AND_PUNCTUATION.sub("", unicodedata.normalize("NFD", text).lower())
    return WHITESPACE.sub(" ", text).strip()


def shingles(text: str, ngrams: int) -> set[str]:
    """The word ``ngrams``-grams of the normalised text as strings (what ``shingle_hashes`` hashes); a shorter
    document is one shingle; a document with no words has none."""
    words = normalize(text).split()
    return {" ".join(words[i:i + ngrams]) for i in range(max(1, len(words) - ngrams + 1))} if words else set()


def normalized_words(text: str) -> list[bytes]:
    """``normalize(text).split()``, each word in UTF-8, two to ten times faster where the text is mostly ASCII.

    ``bytes.translate`` does in one C pass what the regular expressions do to ASCII. A text with a few other
    characters (accents, curly quotes, a pound sign) is decomposed and lower-cased first, then loses the marks and
    punctuation among those and has its non-ASCII whitespace turned into spaces (which ``bytes.split`` does not
    split on), one ``str.replace`` per distinct character: the regular expression costs ~90 ns a character, a
    chapter of 2 MB 0.2 s. A text in another alphabet goes through the regular expressions.
    """
    if not text.isascii():
        text = unicodedata.normalize("NFD", text).lower()
        data = text.encode("utf-8")
        if len(data) > 1.25 * len(text):  # a quarter of the characters or more are not ASCII: another alphabet
            data = WHITESPACE.sub(" ", MARKS_AND_PUNCTUATION.sub("", text)).encode("utf-8")
            return data.translate(ASCII_NORMALIZATION).split()
        for char in {c for c in set(text) if not c.isascii()}:
            if MARKS_AND_PUNCTUATION.match(char):
                text = text.replace(char, "")
            elif char.isspace():
                text = text.replace(char, " ")
    return text.encode("utf-8").translate(ASCII_NORMALIZATION, ASCII_PUNCTUATION).split()


def shingle_hashes(text: str, ngrams: int) -> np.ndarray:
    """The 64-bit hash of the shingle at each word position of the normalised text, uint64 (positions,): a shingle
    that occurs twice appears twice (``jaccard`` takes the sets; the minima do not care)."""
    words = normalized_words(text)
    if not words:
        return np.empty(0, dtype=np.uint64)
    # MurmurHash3's x64 128-bit hash of each word, of which the first 64 bits: one C call per word, no Python loop.
    word_hashes = np.frombuffer(b"".join(map(mmh3.mmh3_x64_128_digest, words)), dtype=np.uint64)[::2]
    n = min(ngrams, len(words))  # a document shorter than n words is one shingle of all its words
    count = len(words) - n + 1
    with np.errstate(over="ignore"):  # uint64 arithmetic is mod 2^64 on purpose
        hashes = word_hashes[:count].copy()
        for position in range(1, n):
            hashes += word_hashes[position:position + count] * POSITION_CONSTANTS[position]
    return hashes


SIGNATURE_BLOCK = 4096  # shingles per block of MinHasher.signature: 128 hashes x 4096 x 4 bytes = 2 MiB


class MinHasher:
    """``num_hashes`` hash functions drawn from ``seed``; ``signature(shingle hashes)`` is their minima, uint32 (k,).

    Each function is a random affine bijection of 32-bit words, (a·x + b) mod 2^32 with a odd, applied to the
    shingle's 64-bit hash folded to 32 bits: the inputs are already uniform hashes, so a random bijection of them
    is as good a permutation as MinHash needs, and numpy multiplies uint32 eight times faster than uint64.
    """

    def __init__(self, num_hashes: int, seed: int):
        rng = np.random.default_rng(seed)
        self.a = (rng.integers(0, 2**31, size=(num_hashes, 1), dtype=np.uint32) << np.uint32(1)) | np.uint32(1)
        self.b = rng.integers(0, 2**32, size=(num_hashes, 1), dtype=np.uint32)

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        folded = ((hashes >> np.uint64(32)) ^ hashes).astype(np.uint32)  # (s,): both halves count
        # (k, s) values a·x + b, uint32 wrapping mod 2^32, in column blocks computed in place: a block stays in the
        # cache and no temporary the size of the document is allocated (twice as fast as the one-line expression).
        minima = np.full(len(self.a), np.iinfo(np.uint32).max, dtype=np.uint32)
        block = np.empty((len(self.a), min(SIGNATURE_BLOCK, len(folded))), dtype=np.uint32)
        for start in range(0, len(folded), SIGNATURE_BLOCK):
            part = folded[start:start + SIGNATURE_BLOCK]
            values = block[:, :len(part)]
            np.multiply(self.a, part[None, :], out=values)
            values += self.b
            np.minimum(minima, values.min(axis=1), out=minima)
        return minima


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|A ∩ B| / |A ∪ B| of the sets of two arrays of shingle hashes; 0 for two empty sets."""
    return set_jaccard(np.unique(a), np.unique(b))


def set_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """``jaccard`` of two arrays that are already sets (``np.unique``'s): a document compared with several others
    is made a set once."""
    if not len(a) and not len(b):
        return 0.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


def lsh_buckets(signatures: dict[int, np.ndarray], num_bands: int) -> list[list[int]]:
    """The documents of each bucket of two or more: those whose signatures agree on every row of one band."""
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    for doc, signature in signatures.items():
        key, width = signature.tobytes(), signature.nbytes // num_bands  # the bands as slices of the bytes
        for band in range(num_bands):
            buckets[band, key[band * width:(band + 1) * width]].append(doc)
    return [docs for docs in buckets.values() if len(docs) > 1]


def candidate_pairs(signatures: dict[int, np.ndarray], num_bands: int) -> set[tuple[int, int]]:
    """Pairs (i < j) of documents whose signatures agree on every row of at least one band (for i < j given in
    ascending order): the plain definition, which ``similar_clusters`` does not materialise."""
    return {(docs[i], docs[j]) for docs in lsh_buckets(signatures, num_bands)
            for i in range(len(docs)) for j in range(i + 1, len(docs))}


class DisjointSets:
    """Union-find over integers (path halving); ``components()``: the sets of two or more, each sorted, in order."""

    def __init__(self):
        self.parent: dict[int, int] = {}

    def root(self, x: int) -> int:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> int:
        """Join the sets of ``a`` and ``b``; the root of the union."""
        self.parent[self.root(a)] = root = self.root(b)
        return root

    def components(self) -> list[list[int]]:
        groups: dict[int, list[int]] = defaultdict(list)
        for x in sorted(self.parent):
            groups[self.root(x)].append(x)
        return sorted(group for group in groups.values() if len(group) > 1)


def clusters(pairs: list[tuple[int, int]]) -> list[list[int]]:
    """The connected components of the duplicate pairs, each sorted, in order of their first member."""
    sets = DisjointSets()
    for a, b in pairs:
        sets.union(a, b)
    return sets.components()


def join_similar(docs: list[int], similar: Callable[[int, int], bool], sets: DisjointSets) -> list[tuple[int, int]]:
    """Join in ``sets`` the clusters of the documents of one LSH bucket that are ``similar``; the pairs (i < j) that
    joined two clusters. Every candidate pair of the bucket is not checked: n copies of one page make n(n-1)/2.

    Each document is compared with the clusters the bucket's earlier documents are in, member after member until one
    is similar: one comparison per document where all are copies. The clusters are those that checking every pair
    would give, since a pair left unchecked joins two documents already in one cluster."""
    earlier: dict[int, list[int]] = {}  # a cluster's root -> the bucket's earlier documents in it
    joins = []
    for doc in docs:
        root = sets.root(doc)
        joined = earlier.pop(root, [])  # already in a cluster with some of them: nothing to compare
        for other_root in list(earlier):
            match = next((other for other in earlier[other_root] if similar(other, doc)), None)
            if match is not None:
                joins.append((min(match, doc), max(match, doc)))
                joined += earlier.pop(other_root)
                root = sets.union(other_root, root)
        earlier[root] = joined + [doc]
    return joins


def similar_clusters(signatures: dict[int, np.ndarray], shingle_sets: list[np.ndarray], num_bands: int,
                     jaccard_threshold: float) -> list[list[int]]:
    """``clusters`` of the candidate pairs whose true Jaccard similarity reaches the threshold (``join_similar``)."""
    sets_of: dict[int, np.ndarray] = {}

    def shingle_set(doc: int) -> np.ndarray:
        if doc not in sets_of:
            sets_of[doc] = np.unique(shingle_sets[doc])
        return sets_of[doc]

    def similar(a: int, b: int) -> bool:
        return set_jaccard(shingle_set(a), shingle_set(b)) >= jaccard_threshold

    sets = DisjointSets()
    for docs in lsh_buckets(signatures, num_bands):
        join_similar(docs, similar, sets)
    return sets.components()


def check_arguments(num_hashes: int, num_bands: int, ngrams: int, jaccard_threshold: float) -> None:
    if num_hashes < 1 or num_bands < 1 or num_hashes % num_bands:
        raise ValueError(f"num_hashes ({num_hashes}) must be a positive multiple of num_bands ({num_bands})")
    if ngrams < 1:
        raise ValueError(f"ngrams must be >= 1, got {ngrams}")
    if not 0 <= jaccard_threshold <= 1:
        raise ValueError(f"jaccard_threshold must lie in [0, 1], got {jaccard_threshold}")


def duplicates_to_drop(texts: list[str], num_hashes: int, num_bands: int, ngrams: int, jaccard_threshold: float,
                       seed: int = 0) -> set[int]:
    """Indices of the documents that deduplication removes: all but one random member of each cluster."""
    check_arguments(num_hashes, num_bands, ngrams, jaccard_threshold)
    shingle_sets = [shingle_hashes(text, ngrams) for text in texts]
    hasher = MinHasher(num_hashes, seed)
    signatures = {i: hasher.signature(s) for i, s in enumerate(shingle_sets) if len(s)}  # no words: no duplicate
    chooser = random.Random(seed)
    drop: set[int] = set()
    for cluster in similar_clusters(signatures, shingle_sets, num_bands, jaccard_threshold):
        keep = chooser.choice(cluster)
        drop.update(doc for doc in cluster if doc != keep)
    return drop


def minhash_deduplication(input_files: list[str | os.PathLike], num_hashes: int, num_bands: int, ngrams: int,
                          jaccard_threshold: float, output_directory: str | os.PathLike, *, seed: int = 0) -> None:
    outputs = output_paths(input_files, output_directory)
    check_arguments(num_hashes, num_bands, ngrams, jaccard_threshold)
    contents = []
    for path in input_files:
        with open(path, "rb") as f:
            contents.append(f.read())
    texts = [data.decode("utf-8", errors="replace") for data in contents]
    drop = duplicates_to_drop(texts, num_hashes, num_bands, ngrams, jaccard_threshold, seed)
    Path(output_directory).mkdir(parents=True, exist_ok=True)
    for i, (data, output) in enumerate(zip(contents, outputs)):
        if i not in drop:  # the bytes read, whatever their encoding: a copy of the input
            with open(output, "wb") as f:
                f.write(data)
