"""Corpora the benchmarks build from what the machine can install (nothing is committed).

``linux_text()``: ≥ 100 MB of real text from the Linux 6.1 sources (GPL-2.0), fetched as
Debian's ``linux-source-6.1`` package with ``apt-get download``: the archive's .rst, .txt, .c
and .h files in archive order, one file a document, joined by ``<|endoftext|>``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from tqdm import tqdm

from impl.programs.corpora import CACHE, EOT

LINUX_PACKAGE = "linux-source-6.1"
TEXT_SUFFIXES = (".rst", ".txt", ".c", ".h")


def linux_text(target_bytes: int = 120_000_000) -> Path:
    out = CACHE / f"linux-6.1-text-{target_bytes // 1_000_000}MB.txt"
    if out.exists():
        return out
    if shutil.which("apt-get") is None:
        raise RuntimeError("building the Linux-text corpus needs apt-get (Debian or Ubuntu)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", LINUX_PACKAGE], cwd=tmp, check=True, capture_output=True)
        deb = next(Path(tmp).glob("*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        archive = next(Path(tmp).glob("usr/src/linux-source-*.tar.xz"))
        written = skipped = 0
        with tarfile.open(archive, "r:xz") as tar, tempfile.NamedTemporaryFile(
                "w", encoding="utf-8", dir=out.parent, delete=False) as dst, \
                tqdm(total=target_bytes, unit="B", unit_scale=True, desc="linux text") as bar:
            for member in tar:
                if written >= target_bytes:
                    break
                if not (member.isfile() and member.name.endswith(TEXT_SUFFIXES)):
                    continue
                try:
                    text = tar.extractfile(member).read().decode("utf-8")
                except UnicodeDecodeError:
                    skipped += 1  # a few files are Latin-1: counted and reported, not mangled
                    continue
                dst.write(text + EOT)
                written += len(text.encode("utf-8")) + len(EOT)
                bar.update(len(text.encode("utf-8")) + len(EOT))
    os.replace(dst.name, out)
    print(f"{out}: {written / 1e6:.0f} MB; {skipped} files skipped as not UTF-8")
    return out
