"""Every program's bad-input cases (tests/programs/bad_inputs.py): one line naming the problem, a non-zero exit, no
traceback, and nothing partial left behind — no temp file anywhere, no output of work that did not happen."""

from __future__ import annotations

import subprocess
import sys

import pytest

from impl.programs.cli import UserError
from tests.harness.helpers import REPO
from tests.programs.bad_inputs import PROGRAMS, cases, make_world, run_case


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    make_world(root)
    return root


CASES = cases(REPO)  # for the ids only: the real cases are built on the world below


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c.program}: {c.mistake}" for c in CASES])
def test_a_mistake_is_one_line_and_a_non_zero_exit(world, tmp_path, index):
    case = cases(world)[index]
    before = snapshot(world)
    code, err = run_case(case, tmp_path)
    assert (code, len(err.splitlines())) == (case.exit_code, 1), err
    assert err.startswith(f"{case.program}: error: ") and case.says in err, err
    assert not [p for p in tmp_path.rglob("*.tmp")], "a temp file was left behind"
    assert not [name for name in case.leaves_no if (tmp_path / name).exists()], "a partial output was left behind"
    assert snapshot(world) == before, "the mistake changed the files of the world it read"


def test_debug_shows_the_traceback_instead(world, tmp_path):
    with pytest.raises(UserError, match="checkpoint.pt does not exist"):
        PROGRAMS["generate"](["--run", str(tmp_path), "--debug"])


def snapshot(root) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_help_does_not_import_torch(program):
    """``--help`` comes at once: it imports neither torch nor triton (seconds each on a loaded machine)."""
    code = (f"import sys\nfrom tests.programs.bad_inputs import PROGRAMS\ntry:\n    PROGRAMS[{program!r}](['--help'])\n"
            f"except SystemExit as exit:\n    assert exit.code == 0\nprint(sorted(m for m in ('torch', 'triton') "
            f"if m in sys.modules))")
    shown = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == "[]", shown.stdout
    assert "usage:" in shown.stdout and "(default:" in shown.stdout or program == "fetch-corpus", shown.stdout
