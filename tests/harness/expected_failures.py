"""The expected-failures file an implementation keeps: known gaps, marked xfail by the plugin."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ExpectedFailure:
    pattern: str
    reason: str
    matched: bool = False

    def matches(self, nodeid: str) -> bool:
        # Only * and ? are wildcards: brackets in node ids (test_golden[linear]) are literal.
        return fnmatch.fnmatchcase(nodeid, self.pattern.replace("[", "[[]"))


def read_expected_failures(path: Path | None) -> list[ExpectedFailure]:
    """One node-id glob per line, optional ``# reason``; blank and comment-only lines ignored."""
    if path is None:
        return []
    if not path.is_file():
        raise FileNotFoundError(f"expected-failures file {path} does not exist")
    entries = []
    for line in path.read_text().splitlines():
        pattern, _, reason = line.partition("#")
        if pattern.strip():
            entries.append(ExpectedFailure(pattern.strip(), reason.strip() or "declared in " + path.name))
    return entries
