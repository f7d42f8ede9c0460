"""Independent oracles that fail to build are errors of the kit, never findings about the implementation.

A conformance test builds its oracle (HF transformers' Llama, tiktoken's GPT-2 ...) inside ``with oracle("..."):``.
Whatever goes wrong there (a ``transformers`` without ``LlamaConfig``, a changed constructor) becomes an
OracleError, which the report counts as a *kit error* of that test: the implementation is neither passed nor
failed by it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator



class OracleError(Exception):
    """The kit's oracle could not be built or run: a problem of the kit or its environment."""


@contextlib.contextmanager
def oracle(name: str) -> Iterator[None]:
    try:
        yield
    except Exception as error:  # noqa: BLE001 (any failure of the oracle is the kit's)
        raise OracleError(f"the oracle {name} failed ({type(error).__name__}: {error}): an error of the kit or of its "
                          "environment, not of the implementation under test") from error


