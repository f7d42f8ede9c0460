"""The tokenizer's bridge (spec/tokenizer.py): ``train_bpe`` calls ``run_train_bpe``; ``Tokenizer`` is a
class whose constructor calls ``get_tokenizer(vocab, merges, special_tokens)`` and whose
``encode`` / ``decode`` / ``encode_iterable`` delegate to the object it returns.
``Tokenizer.from_files`` reads the course's files (GPT-2's vocab.json and merges.txt) with the
kit's own reader (spec/gpt2_format.py), then calls ``get_tokenizer``: the course's
adapters expose no file loading of their own. A method of the returned object that raises
NotImplementedError reports the component missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import spec.tokenizer
from spec.adapters.common import Adapters, bound, bridge_functions
from spec.gpt2_format import read_gpt2_files
from spec import ComponentMissing

# Spec function -> the adapter taking the same arguments in the same order (names may differ).
FUNCTIONS: dict[str, tuple[Callable, str]] = {
    "train_bpe": (spec.tokenizer.train_bpe, "run_train_bpe"),
}
BRIDGED = (*FUNCTIONS, "Tokenizer")  # what this bridge can provide


def members(adapters: Adapters) -> dict[str, Any]:
    """The tokenizer's components that the adapters file provides, bridged."""
    found: dict[str, Any] = bridge_functions(adapters, FUNCTIONS)
    if adapters.has("get_tokenizer"):
        found["Tokenizer"] = bound(adapters, Tokenizer)
    return found


class Tokenizer:
    """The spec's Tokenizer around the object ``get_tokenizer`` returns (bound to one file by load_adapters)."""

    adapters: ClassVar[Adapters]

    def __init__(self, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]],
                 special_tokens: list[str] | None = None):
        self.tokenizer = self.adapters.call("Tokenizer", "get_tokenizer", vocab, merges, special_tokens)

    @classmethod
    def from_files(cls, vocab_filepath, merges_filepath, special_tokens: list[str] | None = None) -> Tokenizer:
        vocab, merges = read_gpt2_files(vocab_filepath, merges_filepath)
        return cls(vocab, merges, special_tokens)

    def method(self, name: str) -> Callable:
        found = getattr(self.tokenizer, name, None)
        if not callable(found):
            raise ComponentMissing("Tokenizer", f"the object adapters.get_tokenizer returns has no {name} method")
        return found

    def encode(self, text: str) -> list[int]:
        try:
            return self.method("encode")(text)
        except NotImplementedError as error:
            raise ComponentMissing("Tokenizer", "its encode raises NotImplementedError") from error

    def decode(self, ids: list[int]) -> str:
        try:
            return self.method("decode")(ids)
        except NotImplementedError as error:
            raise ComponentMissing("Tokenizer", "its decode raises NotImplementedError") from error

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        try:
            ids = self.method("encode_iterable")(iterable)
        except NotImplementedError as error:
            raise ComponentMissing("Tokenizer", "its encode_iterable raises NotImplementedError") from error
        return self.lazily(ids)

    @staticmethod
    def lazily(ids: Iterable[int]) -> Iterator[int]:
        """Yield as the student's iterator yields (a generator raises NotImplementedError only when first advanced)."""
        try:
            yield from ids
        except NotImplementedError as error:
            raise ComponentMissing("Tokenizer", "its encode_iterable raises NotImplementedError") from error
