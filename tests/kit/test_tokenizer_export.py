"""The reference's exports: a tokenizer trained here gives the same ids through tiktoken and HF tokenizers."""

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
