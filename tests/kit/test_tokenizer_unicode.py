r"""The reference pre-tokenizes every character as tiktoken does, except those only one of them knows.

``\p{L}``, ``\p{N}`` and ``\s`` in GPT-2's pattern come from each regex engine's own Unicode tables: the
``regex`` package's here, the Rust engine's in tiktoken. A character assigned in a Unicode version that only one
of them knows is a letter to one and punctuation to the other, so GPT-2 ids differ on it. tiktoken 0.8-0.14 know
Unicode 16.0; every ``regex`` release that today's transformers accepts (>= 2025.10.22) knows 17.0 or 18.0, so
tiktoken's tables cannot be matched. pyproject.toml pins ``regex`` to the releases with Unicode 18.0
(2026.9.29 on; 2025.10.22-2026.9.10 have 17.0): the ids of a text never change within the pinned range.

The test: ids equal tiktoken's on every code point but the characters Unicode 17.0 and 18.0 assigned as letters
or digits, and those are exactly the recorded set. A ``regex`` outside the range (other Unicode tables) or a
tiktoken with other tables changes the set and fails here.
"""

import hashlib
import importlib.metadata

import pytest

from fixtures import FIXTURES_DIR
from impl import Tokenizer
from impl.tokenizer.export import to_tiktoken

pytest.importorskip("tiktoken", reason="the oracle")
GPT2_DIR = FIXTURES_DIR / "data" / "gpt2"
BLOCK = 4096  # code points compared at a time; only a differing block is compared character by character
# Recorded with regex 2026.9.29 to 2026.11.19 (Unicode 18.0) and tiktoken 0.14.0 (Unicode 16.0).
NEWER_THAN_TIKTOKEN = (17480, "9aae43e100055c3b")  # (count, sha256 prefix of the code points)


def probe(code_points) -> str:
    """Each character followed by 's: punctuation takes the apostrophe (c' s), a letter or digit does not (c 's)."""
    return "".join(f"{chr(c)}'s\n" for c in code_points)


def test_gpt2_ids_equal_tiktoken_on_every_character_both_know():
    """Every code point but the surrogates (which UTF-8 cannot encode), in a context that shows its class."""
    gpt2 = Tokenizer.from_files(GPT2_DIR / "vocab.json", GPT2_DIR / "merges.txt")
    encoding = to_tiktoken(gpt2, "gpt2-local")

    def differ(code_points) -> bool:
        return gpt2.encode(probe(code_points)) != encoding.encode_ordinary(probe(code_points))

    blocks = [[c for c in range(start, start + BLOCK) if not 0xD800 <= c <= 0xDFFF]
              for start in range(0, 0x110000, BLOCK)]
    characters = [c for block in blocks if differ(block) for c in block if differ([c])]
    digest = hashlib.sha256(",".join(map(str, characters)).encode()).hexdigest()[:16]
    assert (len(characters), digest) == NEWER_THAN_TIKTOKEN, (
        f"{len(characters)} characters pre-tokenize differently from tiktoken's GPT-2 (e.g. "
        f"{', '.join(f'U+{c:04X}' for c in characters[:8])}), not the recorded {NEWER_THAN_TIKTOKEN[0]}: regex "
        f"{importlib.metadata.version('regex')} or tiktoken {importlib.metadata.version('tiktoken')} know other "
        "Unicode tables than the recorded ones; install a regex within pyproject.toml's range")
