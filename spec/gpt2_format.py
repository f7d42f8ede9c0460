"""Read the course's tokenizer files: GPT-2's ``vocab.json`` and ``merges.txt``.

Both write tokens in GPT-2's byte-to-unicode alphabet (every byte as one printable
character: ``Ġ`` is the space). ``vocab.json`` maps token text to id; ``merges.txt`` has one
merge per line, ``"left right"``, after an optional ``#version`` line.

The kit reads them itself (independently of impl/) so that the adapters bridge
(spec/adapters/tokenizer.py) can offer ``Tokenizer.from_files`` on top of the course's
``get_tokenizer(vocab, merges, special_tokens)``: reading the file format is not part of what a
course adapters file exposes. The tokenizer's conformance tests read the files with it too.
"""

from __future__ import annotations

import functools
import json
import os


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table (``encoder.py``): printable Latin-1 bytes stand for themselves; the other 68
    bytes, in increasing order, become U+0100, U+0101, …"""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


@functools.cache
def unicode_to_bytes() -> dict[str, int]:
    return {char: byte for byte, char in bytes_to_unicode().items()}


def token_bytes(text: str) -> bytes:
    """The bytes a token written in the byte-to-unicode alphabet stands for."""
    table = unicode_to_bytes()
    try:
        return bytes(table[char] for char in text)
    except KeyError as error:
        raise ValueError(f"{text!r} is not written in GPT-2's byte-to-unicode alphabet "
                         f"(character {error.args[0]!r})") from None


def read_vocab(path: str | os.PathLike) -> dict[int, bytes]:
    """``{token_text: id}`` in the file -> ``{id: token_bytes}``."""
    with open(path, encoding="utf-8") as f:
        return {int(i): token_bytes(text) for text, i in json.load(f).items()}


def read_merges(path: str | os.PathLike) -> list[tuple[bytes, bytes]]:
    """The merges in file order (= rank order); blank lines and the ``#version`` header skipped."""
    merges = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")  # no token holds a raw CR or LF: they are written Ċ and č
            if not line or line.startswith("#version"):
                continue
            parts = line.split(" ")
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"{path}:{number}: expected two tokens separated by one space, got {line!r}")
            merges.append((token_bytes(parts[0]), token_bytes(parts[1])))
    return merges


def read_gpt2_files(vocab_path: str | os.PathLike, merges_path: str | os.PathLike
                    ) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    return read_vocab(vocab_path), read_merges(merges_path)
