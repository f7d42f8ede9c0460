"""Exact line deduplication (A4 §3.1): count every line of the corpus by a hash, then keep the lines seen once.

Files are read as bytes, so that any encoding and every line terminator survive unchanged; a line is compared
without its terminator. The counts are keyed by a 128-bit hash of the line (fixed size, as the handout suggests:
two different lines collide with probability ~2^-128 per pair).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import mmh3


def line_key(line: bytes) -> int:
    return mmh3.hash128(line.rstrip(b"\r\n"), signed=False)


def output_paths(input_files: list[str | os.PathLike], output_directory: str | os.PathLike) -> list[str]:
    """``output_directory/name`` for each input; two inputs of the same name would overwrite each other: refused.
    (os.path, not pathlib: a Path costs more than deduplicating a short document.)"""
    directory = os.fspath(output_directory)
    seen: dict[str, str] = {}
    for path in map(os.fspath, input_files):
        name = os.path.basename(path)
        if name in seen:
            raise ValueError(f"input_files: {seen[name]} and {path} have the same file name {name!r}, "
                             "and the outputs are written under the input names")
        seen[name] = path
    return [os.path.join(directory, name) for name in seen]


def exact_line_deduplication(input_files: list[str | os.PathLike], output_directory: str | os.PathLike) -> None:
    outputs = output_paths(input_files, output_directory)
    counts: Counter[int] = Counter()
    for path in input_files:
        with open(path, "rb") as f:
            counts.update(map(line_key, f))
    Path(output_directory).mkdir(parents=True, exist_ok=True)
    for path, output in zip(input_files, outputs):
        with open(path, "rb") as f, open(output, "wb") as out:
            out.writelines(line for line in f if counts[line_key(line)] == 1)
