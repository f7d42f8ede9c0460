"""The reference tokenizer's fast paths give exactly what the plain ones give.

- ``pretokens`` runs ASCII stretches through the standard library's ``re`` (a pattern written for ASCII) and cuts
  the text, every ``PIECE_CHARS`` characters or so, only where a pre-token must start. Any text, cut anywhere it
  may be cut, must give ``PRETOKEN.findall``'s pre-tokens. A stream's buffer is cut at the last such place, found
  from the end.
- ``BatchBPE`` merges many pre-tokens side by side in numpy; each must come out as ``Tokenizer._bpe`` merges it
  alone, for any merge list (repeated merges, merges of tokens made later, runs like ``aaaa``). Its mutants must
  fail that check.
- ``encode`` groups pieces, merges a group's new pre-tokens together and empties a full cache: none of it may
  change an id.
"""

import lzma
import random
import re

import pytest
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fixtures import FIXTURES_DIR
from impl.programs.corpora import EOT
from impl.tokenizer import batch_bpe, encoding
from tests.harness.helpers import source_mutant

# Every class of the pattern, in and out of ASCII: letters, digits, contractions, punctuation, ASCII whitespace,
# \x1c-\x1f (whitespace to re's \s, not to regex's), non-ASCII spaces, letters and digits.
ASCII = "aZs'ltvdmre09.,!?-_ \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
MIXED = ASCII + "£éñ²Ⅻ一你\u00a0\u2003\u2028\u0085"
texts = st.one_of(st.text(alphabet=ASCII, max_size=300), st.text(alphabet=MIXED, max_size=300),
                  st.text(max_size=300))


@pytest.mark.parametrize("piece_chars", [1, 7, 1 << 16])
@given(text=texts)
@settings(max_examples=300, deadline=None)
def test_pretokens_are_the_regex_pattern_s_whatever_the_cuts(piece_chars, text):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encoding, "PIECE_CHARS", piece_chars)
        assert encoding.pretokens(text) == encoding.PRETOKEN.findall(text)


def plain_safe_cut(text: str, specials: list[str]) -> int:
    """The last PIECE_CUT before any tail that starts a special token, found by scanning the text from its start."""
    limit = len(text)
    for special in specials:
        for k in range(len(special) - 1, 0, -1):
            if text.endswith(special[:k]):
                limit = min(limit, len(text) - k)
                break
    cuts = [match.start() for match in encoding.PIECE_CUT.finditer(text, 0, limit)]
    return cuts[-1] if cuts else 0


@given(text=texts, specials=st.lists(st.text(alphabet="a <\n", min_size=1, max_size=5), max_size=3),
       tail=st.integers(0, 4), which=st.integers(0, 2))
@example(text="x", specials=["a a<"], tail=3, which=0)  # ends in "a a" and in "a": the longer one is held back
@settings(max_examples=500, deadline=None)
def test_a_stream_s_buffer_is_cut_at_the_last_piece_cut_before_a_special_s_start(text, specials, tail, which):
    """split_stream's cut, found by going back from the end (LAST_PIECE_CUT), is the plain scan's; the text often
    ends in the start of a special token."""
    if specials:
        text += specials[which % len(specials)][:tail]
    assert encoding._safe_cut(text, encoding.special_prefixes(specials)) == plain_safe_cut(text, specials)


def test_the_cut_s_non_space_is_a_non_space_to_regex_too():
    """PIECE_CUT's lookbehind is re's \\S: a character re calls a non-space must be one to regex, or a cut could
    fall inside a run of whitespace."""
    every_character = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert set(regex.findall(r"\s", every_character)) <= set(re.findall(r"\s", every_character))


def test_a_repeated_merge_does_not_hide_the_merges_after_it():
    """A merge list may repeat a pair (the first rank counts): ranks then run past the number of distinct pairs,
    and the last merge must still apply."""
    vocab = {b: bytes([b]) for b in range(256)} | {256: b"ab", 257: b"abc"}
    tokenizer = encoding.Tokenizer(vocab, [(b"a", b"b"), (b"a", b"b"), (b"ab", b"c")])
    assert tokenizer.encode("abc abcab") == [257, ord(" "), 257, 256]


# ---------------------------------------------------------------------------------------------
# BPE of many pre-tokens at once (impl/tokenizer/batch_bpe.py) against the one-by-one loop.

LETTERS = b"abc"


def random_merges(rng: random.Random) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """A merge list over a few letters that a trainer would not write: some merges repeated, some moved before
    the merges that make their tokens, pairs of a token with itself."""
    made, merges = [bytes([c]) for c in LETTERS], []
    for _ in range(rng.randrange(1, 25)):
        left, right = rng.choice(made), rng.choice(made)
        merges.append((left, right))
        if left + right not in made:
            made.append(left + right)
    for _ in range(rng.randrange(3)):
        merges.insert(rng.randrange(len(merges) + 1), rng.choice(merges))
    if rng.random() < 0.5:
        i, j = rng.randrange(len(merges)), rng.randrange(len(merges))
        merges[i], merges[j] = merges[j], merges[i]
    tokens = [bytes([b]) for b in range(256)] + [t for t in made if len(t) > 1]
    return dict(enumerate(tokens)), merges


def random_words(rng: random.Random) -> list[bytes]:
    return [bytes(rng.choice(LETTERS) for _ in range(rng.randrange(1, 14))) for _ in range(rng.randrange(1, 40))]


def assert_batch_is_bpe(batch_class, cases: int = 150) -> None:
    rng = random.Random(0)
    for _ in range(cases):
        vocab, merges = random_merges(rng)
        tokenizer = encoding.Tokenizer(vocab, merges)
        words = random_words(rng)
        batch = batch_class(tokenizer.rank_of, tokenizer.merged_at, tokenizer.byte_ids)
        assert batch(words) == [tokenizer._bpe(word) for word in words], f"merges {merges}, words {words}"


def test_batch_bpe_merges_each_word_as_the_one_by_one_loop_does():
    assert_batch_is_bpe(batch_bpe.BatchBPE)


@given(seed=st.integers(0, 2**32), words=st.lists(st.binary(min_size=1, max_size=16), max_size=30))
@settings(max_examples=200, deadline=None)
def test_batch_bpe_on_any_bytes(seed, words):
    """Bytes outside the merges' letters too, and words that repeat."""
    vocab, merges = random_merges(random.Random(seed))
    tokenizer = encoding.Tokenizer(vocab, merges)
    assert tokenizer._batch_bpe(words) == [tokenizer._bpe(word) for word in words]


@pytest.fixture(scope="module")
def gpt2() -> encoding.Tokenizer:
    gpt2_dir = FIXTURES_DIR / "data" / "gpt2"
    return encoding.Tokenizer.from_files(gpt2_dir / "vocab.json", gpt2_dir / "merges.txt", [EOT])


@pytest.fixture(scope="module")
def prose() -> str:
    with lzma.open(FIXTURES_DIR / "data" / "corpus" / "prose_valid.txt.xz", "rt", encoding="utf-8") as f:
        return f.read()[:200_000]


def test_batch_bpe_with_gpt2_s_merges(gpt2, prose):
    """50,000 pairs in the hash table: the 4,677 distinct pre-tokens of 200 KB of prose merged as alone."""
    words = [pretoken.encode() for pretoken in dict.fromkeys(encoding.pretokens(prose))]
    assert len(words) > 4000
    assert gpt2._batch_bpe(words) == [gpt2._bpe(word) for word in words]


BATCH_MUTANTS = {
    "runs of a pair merged at every position": ("merge &= (position - run_start) % 2 == 0", "pass"),
    "the id before a merge keeps its old pair's rank": (
        "changed = (merge | shifted_left(merge))[stay]", "changed = merge[stay]"),
    "the merged id dropped, the pair's right id kept": ("stay = ~shifted_right(merge)", "stay = ~merge"),
    "pairs across two words": ("paired[paired] = word[at[paired]] == word[at[paired] + 1]", "pass"),
    "a lookup stops at its home slot": ("todo = todo[~hit & (found != EMPTY)]", "todo = todo[:0]"),
}


@pytest.mark.parametrize("mutant", BATCH_MUTANTS)
def test_the_check_rejects_the_batch_mutant(mutant):
    broken = source_mutant(batch_bpe, *BATCH_MUTANTS[mutant]).BatchBPE
    with pytest.raises(AssertionError):
        assert_batch_is_bpe(broken)


# ---------------------------------------------------------------------------------------------
# encode's groups, batches and cache.


@pytest.mark.parametrize("group_chars", [1, 3000, 1 << 20])
@pytest.mark.parametrize("batch_words", [1, 1 << 30], ids=["batch", "one-by-one"])
@pytest.mark.parametrize("cache_entries", [50, 1 << 16], ids=["cache-overfills", "cache-holds-all"])
def test_encode_s_ids_do_not_depend_on_groups_batches_or_cache_size(gpt2, prose, group_chars, batch_words,
                                                                     cache_entries):
    text = EOT.join(prose[i:i + 7000] for i in range(0, 40_000, 7000))
    expected = []
    for piece, is_special in encoding._final_split(text, encoding.special_token_pattern([EOT])):
        expected += [gpt2.special_ids[piece]] if is_special else [
            i for pretoken in encoding.pretokens(piece) for i in gpt2._bpe(pretoken.encode())]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encoding, "GROUP_CHARS", group_chars)
        patch.setattr(encoding, "BATCH_WORDS", batch_words)
        patch.setattr(encoding, "CACHE_ENTRIES", cache_entries)
        tokenizer = encoding.Tokenizer(gpt2.vocab, gpt2.merges, [EOT])
        assert tokenizer.encode(text) == expected
        assert tokenizer.encode(text[::-1]) == gpt2.encode(text[::-1])  # another call: part cached, part new
        assert tokenizer.encode(text) == expected
        assert list(tokenizer.encode_iterable(text.splitlines(keepends=True))) == expected
        assert len(tokenizer._cache) <= max(cache_entries, len(set(encoding.pretokens(text))))
