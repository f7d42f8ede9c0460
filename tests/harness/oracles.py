"""Independent oracles that fail to build are errors of the kit, never findings about the implementation.

A conformance test builds its oracle (HF transformers' Llama, tiktoken's GPT-2 ...) inside ``with oracle("..."):``.
Whatever goes wrong there (a ``transformers`` without ``LlamaConfig``, a changed constructor) becomes an
OracleError, which the report counts as a *kit error* of that test: the implementation is neither passed nor
failed by it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from fixtures import FIXTURES_DIR


class OracleError(Exception):
    """The kit's oracle could not be built or run: a problem of the kit or its environment."""


@contextlib.contextmanager
def oracle(name: str) -> Iterator[None]:
    try:
        yield
    except Exception as error:  # noqa: BLE001 (any failure of the oracle is the kit's)
        raise OracleError(f"the oracle {name} failed ({type(error).__name__}: {error}): an error of the kit or of its "
                          "environment, not of the implementation under test") from error


def hf_gpt2_bpe():
    """GPT-2's byte-level BPE (fixtures/data/gpt2) as an HF ``tokenizers.Tokenizer``, without special tokens: the
    tokenizer tests' parity oracle and the alignment tests' tokenizer. Needs ``tokenizers``."""
    import tokenizers

    gpt2 = FIXTURES_DIR / "data" / "gpt2"
    vocab = json.loads((gpt2 / "vocab.json").read_text("utf-8"))
    lines = (gpt2 / "merges.txt").read_text("utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#")]
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=merges))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    return bpe
