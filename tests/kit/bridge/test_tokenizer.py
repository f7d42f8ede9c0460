"""The tokenizer through the bridge (spec/adapters/tokenizer.py), and the GPT-2 file reader it uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import impl
from spec.adapters import load_adapters
from spec import ComponentMissing
from tests.harness.helpers import REPO
from tests.kit.bridge.common import BYTES_VOCAB

GPT2 = REPO / "fixtures" / "data" / "gpt2"
TEXTS = ["Hello, world! It's 2024 — don't   panic.\n\n\tTabs and  spaces  ",
         "héllo wörld 🙂 日本語<|endoftext|>next document<|endoftext|><|endoftext|>",
         "def f(x):\n    return x ** 2  # comment\n"]


@pytest.fixture(scope="module")
def gpt2_pair(bridged):
    """(bridged tokenizer, reference tokenizer) on GPT-2's files, with overlapping special tokens."""
    specials = ["<|endoftext|>", "<|endoftext|><|endoftext|>"]
    return (bridged.Tokenizer.from_files(GPT2 / "vocab.json", GPT2 / "merges.txt", specials),
            impl.Tokenizer.from_files(GPT2 / "vocab.json", GPT2 / "merges.txt", specials))


def test_gpt2_reader_matches_the_files():
    from impl.tokenizer.encoding import read_gpt2_files as reference_reader
    from spec.gpt2_format import bytes_to_unicode, read_gpt2_files

    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert (table[ord(" ")], table[ord("\n")], table[ord("A")], table[0], table[255]) == ("Ġ", "Ċ", "A", "Ā", "ÿ")
    vocab, merges = read_gpt2_files(GPT2 / "vocab.json", GPT2 / "merges.txt")
    assert len(vocab) == 50257 and vocab[50256] == b"<|endoftext|>" and vocab[220] == b" "
    assert len(merges) == 50000 and merges[0] == (b" ", b"t")
    assert (vocab, merges) == reference_reader(GPT2 / "vocab.json", GPT2 / "merges.txt")


def test_gpt2_reader_rejects_malformed_files(tmp_path):
    from spec.gpt2_format import read_merges, read_vocab

    (tmp_path / "merges.txt").write_text("#version: 0.2\nĠ t\n\nĠt he extra\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"merges.txt:4: expected two tokens"):
        read_merges(tmp_path / "merges.txt")
    (tmp_path / "vocab.json").write_text(json.dumps({"a b": 0}), encoding="utf-8")  # a raw space is not in the alphabet
    with pytest.raises(ValueError, match="byte-to-unicode alphabet"):
        read_vocab(tmp_path / "vocab.json")


def test_train_bpe_goes_through_run_train_bpe(bridged, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("low low low low low lower lower widest widest widest newest newest newest newest newest newest"
                      "<|endoftext|>the cat sat on the mat<|endoftext|>", encoding="utf-8")
    assert bridged.train_bpe(corpus, 290, ["<|endoftext|>"]) == impl.train_bpe(corpus, 290, ["<|endoftext|>"])
    assert bridged.train_bpe(input_path=corpus, vocab_size=270, special_tokens=[]) == impl.train_bpe(corpus, 270, [])


def test_tokenizer_matches_the_reference(gpt2_pair):
    ours, reference = gpt2_pair
    for text in TEXTS:
        ids = reference.encode(text)
        assert ours.encode(text) == ids
        assert list(ours.encode_iterable(text.splitlines(keepends=True))) == ids
        assert ours.decode(ids) == reference.decode(ids) == text
    assert ours.decode([188, 220]) == reference.decode([188, 220])  # a lone continuation byte: U+FFFD


def test_tokenizer_is_built_by_get_tokenizer(bridged):
    merges = [(b"a", b"b"), (b"ab", b"c")]
    vocab = BYTES_VOCAB | {256: b"ab", 257: b"abc"}
    tokenizer = bridged.Tokenizer(vocab, merges, special_tokens=["<s>"])
    assert isinstance(tokenizer.tokenizer, impl.Tokenizer)
    assert tokenizer.encode("abcab<s>") == impl.Tokenizer(vocab, merges, ["<s>"]).encode("abcab<s>")


def test_encode_iterable_stays_lazy(gpt2_pair):
    ours, _ = gpt2_pair
    consumed = []

    def lines():
        for i in range(1000):
            consumed.append(i)
            yield f"line {i} of a long stream\n"

    stream = ours.encode_iterable(lines())
    next(stream)
    assert len(consumed) < 10  # the first id came before the input was read to its end


def tokenizer_adapters(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "adapters.py"
    path.write_text("class Stub:\n" + body + "\n\ndef get_tokenizer(vocab, merges, special_tokens=None):\n"
                    "    return Stub()\n")
    return path


@pytest.mark.parametrize("body, call", [
    ("    def encode(self, text):\n        raise NotImplementedError", lambda t: t.encode("x")),
    ("    def decode(self, ids):\n        raise NotImplementedError", lambda t: t.decode([1])),
    ("    def encode_iterable(self, it):\n        raise NotImplementedError", lambda t: t.encode_iterable(["x"])),
    ("    def encode_iterable(self, it):\n        yield from ()\n        raise NotImplementedError",
     lambda t: list(t.encode_iterable(["x"]))),
    ("    pass", lambda t: t.encode("x")),
], ids=["encode", "decode", "encode_iterable", "encode_iterable-generator", "no-method"])
def test_unimplemented_tokenizer_methods_are_missing(tmp_path, body, call):
    bundle = load_adapters(tokenizer_adapters(tmp_path, body))
    assert set(bundle.members) == {"Tokenizer"}
    with pytest.raises(ComponentMissing) as error:
        call(bundle.Tokenizer(BYTES_VOCAB, []))
    assert error.value.component == "Tokenizer"


def test_tokenizer_classes_are_bound_to_their_file(bridged, tmp_path):
    other = load_adapters(tokenizer_adapters(tmp_path, "    pass"))
    assert other.Tokenizer is not bridged.Tokenizer
    assert isinstance(bridged.Tokenizer(BYTES_VOCAB, []).tokenizer, impl.Tokenizer)
