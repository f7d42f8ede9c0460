"""The reference's pre-tokenizer fast path splits text exactly as GPT-2's pattern in ``regex`` does.

``pretokens`` runs ASCII stretches through the standard library's ``re`` (a pattern written for ASCII) and cuts
the text, every ``PIECE_CHARS`` characters or so, only where a pre-token must start. Any text, cut anywhere it may
be cut, must give ``PRETOKEN.findall``'s pre-tokens.
"""

import re

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from impl.tokenizer import encoding

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
