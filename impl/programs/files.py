"""Every file a program writes appears whole or not at all: ``atomic_write``.

The bytes go to a temp file beside the target (``.<name>.<random>.tmp``: the same filesystem, so the rename is
atomic), are flushed to disk, get the mode a plain ``open`` would give (0666 less the umask: colleagues on a
shared cluster can read checkpoints and token arrays), and are renamed over the target. A reader, a crash or a
full disk sees the old file or the new one, never half of one; an exception removes the temp file. A killed
process cannot remove its own: ``remove_stale_temps`` does, when the next run that owns the target starts.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """A file object for ``path`` ("wb" or "w", UTF-8) whose content replaces ``path`` when the block succeeds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600 whatever the umask
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as file:
        file.write(text)


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temp files that killed writers of ``path`` left beside it; return them. Call it where one run
    owns ``path`` (before its first write), never while another process may be writing it."""
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}")) if path.parent.is_dir() else []
    for temp in stale:
        temp.unlink(missing_ok=True)
    return stale


def umask() -> int:
    # The only way to read it is to set it; no program here sets it from another thread.
    current = os.umask(0o022)
    os.umask(current)
    return current
