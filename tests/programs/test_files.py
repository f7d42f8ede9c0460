"""The programs' one atomic-write helper (impl/programs/files.py): whole files or none, the umask's mode, and the
temp files of killed writers removed by the next run."""

from __future__ import annotations

import os
import stat

import pytest

from impl.programs.files import atomic_write, atomic_write_text, remove_stale_temps


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_a_written_file_has_the_mode_the_umask_gives(tmp_path, mask):
    """mkstemp's 0600 would keep colleagues on a shared cluster from reading checkpoints and token arrays."""
    previous = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "out.txt", "hello")
        with atomic_write(tmp_path / "out.bin") as file:
            file.write(b"\x00\x01")
    finally:
        os.umask(previous)
    for name in ("out.txt", "out.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"the good one")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_write(target) as file:
        file.write(b"half of the new o")
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"the good one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_the_stale_temps_of_a_target_and_of_no_other_are_removed(tmp_path):
    """A killed writer's temp file (``.<name>.<random>.tmp``) goes; another target's, and other files, stay."""
    stale = [tmp_path / ".checkpoint.pt.k2j3.tmp", tmp_path / ".checkpoint.pt.a9z1.tmp"]
    others = [tmp_path / ".metrics.jsonl.x1.tmp", tmp_path / "checkpoint.pt", tmp_path / ".checkpoint.pt.notes"]
    for path in stale + others:
        path.write_text("x")
    assert remove_stale_temps(tmp_path / "checkpoint.pt") == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(others)
    assert remove_stale_temps(tmp_path / "nowhere" / "checkpoint.pt") == []
