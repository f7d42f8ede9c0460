"""The reference tokenizer refuses special tokens it cannot match, at each of its entry points, before any work; and
vocabularies it cannot encode with.

An empty special token matches between any two characters: encode put an id between every two,
encode_iterable and train_bpe never ended. A special token that is not a string is refused too.
The conformance suite checks the empty one on any implementation (strict); this checks the reference's
helpers that split on specials as well, and the message.
"""

import pytest

from impl import Tokenizer, train_bpe
from impl.programs.corpora import EOT
from impl.tokenizer.encoding import split_stream
from impl.tokenizer.training import chunk_bounds

BYTES = {i: bytes([i]) for i in range(256)}  # the smallest byte-level vocabulary
ENTRY_POINTS = {
    "Tokenizer": lambda path, specials: Tokenizer(BYTES, [], specials),
    "train_bpe": lambda path, specials: train_bpe(path, 300, specials),
    "chunk_bounds": lambda path, specials: chunk_bounds(path, specials, 4),
    "split_stream": lambda path, specials: next(split_stream(["hello world"], specials)),
}


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
@pytest.mark.parametrize("bad", ["", None, b"<|pad|>"], ids=["empty", "none", "bytes"])
def test_special_tokens_must_be_non_empty_strings(tmp_path, entry_point, bad):
    path = tmp_path / "corpus.txt"
    path.write_text(f"hello{EOT} world", encoding="utf-8")
    with pytest.raises(ValueError, match=f"special tokens must be non-empty strings, got {bad!r}"):
        ENTRY_POINTS[entry_point](path, [EOT, bad])



def test_a_vocabulary_without_every_byte_is_refused():
    with pytest.raises(ValueError, match=r"lacks 1 single bytes \(e.g. b'A'\): byte-level BPE needs all 256"):
        Tokenizer({i: b for i, b in BYTES.items() if i != 65}, [], [EOT])


@pytest.mark.parametrize("bad_id", [-1, 1 << 31])
def test_token_ids_outside_what_the_merging_arrays_hold_are_refused(bad_id):
    """The batch merge packs a pair of ids into one 64-bit key: ids must lie in [0, 2**31)."""
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 2\*\*31\)"):
        Tokenizer({**BYTES, bad_id: b"ab"}, [(b"a", b"b")])
