"""The reference's exports: a tokenizer trained here gives the same ids through tiktoken and HF tokenizers."""

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impl import Tokenizer, train_bpe
from impl.tokenizer.export import to_tiktoken, write_hf_tokenizer_json
from impl.programs.corpora import EOT, embedded_corpus

tiktoken = pytest.importorskip("tiktoken", reason="the export target")
hf = pytest.importorskip("tokenizers", reason="the export target")


@pytest.fixture(scope="module")
def prose() -> str:
    return embedded_corpus("valid").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def trained(prose, tmp_path_factory) -> Tokenizer:
    path = tmp_path_factory.mktemp("train") / "valid.txt"
    path.write_text(prose, encoding="utf-8")
    vocab, merges = train_bpe(path, 2000, [EOT])
    return Tokenizer(vocab, merges, [EOT])


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    write_hf_tokenizer_json(trained, path)
    return to_tiktoken(trained), hf.Tokenizer.from_file(str(path))


def test_exports_give_our_ids_on_the_corpus(trained, exported, prose):
    encoding, hf_tokenizer = exported
    ours = trained.encode(prose)
    assert encoding.encode(prose, allowed_special="all") == ours
    assert hf_tokenizer.encode(prose).ids == ours
    assert hf_tokenizer.decode(ours, skip_special_tokens=False) == prose


# Assigned characters only (Python's Unicode 14): newer code points are classified by each regex
# engine's own tables (see ASSIGNED_TEXT in tests/conformance/tokenizer/test_tokenizer.py).
@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs", "Cn")), max_size=200) | st.lists(
    st.sampled_from(["the", " Lord", " said", EOT, "\n\n", "  ", "'ll", "é", "🌍", "123", "!?"]), max_size=30).map("".join))
def test_exports_give_our_ids_on_any_text(trained, exported, text):
    encoding, hf_tokenizer = exported
    ours = trained.encode(text)
    assert encoding.encode(text, allowed_special="all") == ours
    assert hf_tokenizer.encode(text).ids == ours


def test_tiktoken_export_refuses_ids_out_of_merge_order(trained):
    shuffled = dict(trained.vocab)
    last, before = max(shuffled), max(shuffled) - 1
    shuffled[last], shuffled[before] = shuffled[before], shuffled[last]
    with pytest.raises(ValueError, match="merge order"):
        to_tiktoken(Tokenizer(shuffled, trained.merges, [EOT]))


# Special tokens that overlap: one starts with another (encode and HF take the longest; tiktoken the first in an
# order of its own, right for some of these sets and wrong for others), or one ends where another begins (every
# engine takes the leftmost).
OVERLAPPING = {
    "prefix": [EOT, "<|a|>", "<|a|><|b|>"],
    "repeated": [EOT, EOT * 2],
    "chain": [EOT, "<x>", "<x>y", "<x>yz"],
    "nested": [EOT, "<|", "<|a", "<|a|>"],
    "end_to_start": [EOT, "<|a|>b", "b<|c|>"],
}


@pytest.fixture(scope="module")
def overlapping(trained, tmp_path_factory):
    """By name in OVERLAPPING: our tokenizer, its tiktoken export (or to_tiktoken's ValueError), its HF export."""
    def export(name):
        tokenizer = Tokenizer(trained.vocab, trained.merges, OVERLAPPING[name])
        try:
            encoding = to_tiktoken(tokenizer)
        except ValueError as error:
            encoding = error
        path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
        write_hf_tokenizer_json(tokenizer, path)
        return tokenizer, encoding, hf.Tokenizer.from_file(str(path))
    return functools.cache(export)


@pytest.mark.parametrize("name", OVERLAPPING)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_exports_match_overlapping_specials_as_encode_does(overlapping, name, data):
    """Text made of the specials, their pieces and words: HF gives our ids; to_tiktoken gives them or refuses."""
    tokenizer, encoding, hf_tokenizer = overlapping(name)
    pieces = [*OVERLAPPING[name], "<|", "|>", "<", ">", "a", "b", "c", "x", "y", "z", "the", " ", "\n"]
    text = "".join(data.draw(st.lists(st.sampled_from(pieces), max_size=30), label="pieces"))
    ours = tokenizer.encode(text)
    assert hf_tokenizer.encode(text).ids == ours
    if not isinstance(encoding, ValueError):
        assert encoding.encode(text, allowed_special="all") == ours


@pytest.mark.parametrize("name", OVERLAPPING)
def test_tiktoken_export_refuses_only_specials_that_start_with_another(overlapping, name):
    """to_tiktoken refuses only where one special starts with another, and names the two."""
    _, encoding, _ = overlapping(name)
    specials = OVERLAPPING[name]
    prefixes = [(a, b) for a in specials for b in specials if a != b and b.startswith(a)]
    if not prefixes:
        assert not isinstance(encoding, ValueError), f"no special starts with another, yet: {encoding}"
    elif isinstance(encoding, ValueError):
        assert any(f"{a!r} and {b!r} overlap" in str(encoding) for a, b in prefixes), str(encoding)
