"""The reference's fast MinHash paths compute exactly what the plain code of the handout's definitions computes.

``normalized_words`` replaces ``normalize(text).split()`` by byte operations (and per-character replacements for
text with few non-ASCII characters); ``MinHasher.signature`` computes its minima in blocks, in place. Both must
give the same words and the same signature for any text, which the plain versions here define.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from impl.data import minhash

# Text that reaches every branch: ASCII letters, punctuation and the separators \x1c-\x1f; accented letters,
# curly quotes and non-ASCII spaces (a few distinct characters); Cyrillic and CJK (another alphabet).
FEW = "AbZ z.,!?'-_\t\n\x0b\x1c\x1d\x1e\x1f £éÉñ’“”…\u00a0\u2003\u3000"
ALPHABET = FEW + "Привет мир 你好世界。、"
texts = st.one_of(st.text(alphabet=FEW, max_size=200), st.text(alphabet=ALPHABET, max_size=200), st.text(max_size=200))


def plain_words(text: str) -> list[bytes]:
    return [word.encode("utf-8") for word in minhash.normalize(text).split()]


@given(texts)
@settings(max_examples=400, deadline=None)
def test_normalized_words_are_the_normalised_text_split(text):
    assert minhash.normalized_words(text) == plain_words(text)


def test_normalized_words_on_every_code_point():
    """Each code point alone and between words, in both the few-characters and the other-alphabet branch."""
    for start in range(0, 0x30000, 4096):
        chars = [chr(c) for c in range(start, start + 4096) if not 0xD800 <= c < 0xE000]
        for text in ("a" + "a ".join(chars) + " b", "é" + " x".join(chars[:16]) + "…"):
            assert minhash.normalized_words(text) == plain_words(text), hex(start)


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=9000), st.integers(1, 40), st.integers(0, 2**32))
@settings(max_examples=60, deadline=None)
def test_signature_is_the_minimum_of_the_affine_hashes(values, num_hashes, seed):
    hashes = np.array(values, dtype=np.uint64)
    hasher = minhash.MinHasher(num_hashes, seed)
    folded = [(v >> 32 ^ v) & 0xFFFFFFFF for v in values]
    expected = [min((int(a) * x + int(b)) % 2**32 for x in folded) for a, b in zip(hasher.a[:, 0], hasher.b[:, 0])]
    assert hasher.signature(hashes).tolist() == expected


def test_signature_across_blocks():
    """Three full blocks and a partial one, the minimum of each hash function in a different block."""
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**64, size=3 * minhash.SIGNATURE_BLOCK + 123, dtype=np.uint64)
    hasher = minhash.MinHasher(64, 7)
    folded = ((hashes >> np.uint64(32)) ^ hashes).astype(np.uint32).astype(np.int64)
    expected = ((hasher.a.astype(np.int64) * folded[None, :] + hasher.b) % 2**32).min(axis=1)
    assert np.array_equal(hasher.signature(hashes), expected)
    assert len({int(i) // minhash.SIGNATURE_BLOCK for i in ((hasher.a.astype(np.int64) * folded + hasher.b)
                                                            % 2**32).argmin(axis=1)}) == 4


@given(st.lists(st.integers(0, 5), min_size=2, max_size=40), st.integers(0, 2**16),
       st.sampled_from([0.0, 0.3, 0.5, 0.8, 1.0]))
@settings(max_examples=150, deadline=None)
def test_similar_clusters_are_the_clusters_of_all_verified_pairs(variants, seed, threshold):
    """Documents drawn from a few base texts with some words changed, in buckets of many: the clusters equal
    those of every candidate pair verified, the plain definition."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(30)]
    bases = [list(rng.choice(vocabulary, size=12)) for _ in range(6)]
    texts = []
    for base in variants:
        words = list(bases[base])
        for position in rng.choice(len(words), size=rng.integers(0, 4), replace=False):
            words[position] = str(rng.choice(vocabulary))
        texts.append(" ".join(words))
    shingle_sets = [minhash.shingle_hashes(text, 2) for text in texts]
    hasher = minhash.MinHasher(8, seed)
    signatures = {i: hasher.signature(s) for i, s in enumerate(shingle_sets)}
    pairs = sorted(pair for pair in minhash.candidate_pairs(signatures, 8)
                   if minhash.jaccard(shingle_sets[pair[0]], shingle_sets[pair[1]]) >= threshold)
    assert minhash.similar_clusters(signatures, shingle_sets, 8, threshold) == minhash.clusters(pairs)
    # The joins (what filter-web-data's verify tasks keep): verified pairs, spanning the same clusters.
    sets, joins = minhash.DisjointSets(), []
    for docs in minhash.lsh_buckets(signatures, 8):
        joins += minhash.join_similar(docs, lambda a, b: minhash.jaccard(shingle_sets[a], shingle_sets[b]) >= threshold,
                                      sets)
    assert set(joins) <= set(pairs) and minhash.clusters(joins) == minhash.clusters(pairs)
