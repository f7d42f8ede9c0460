"""The conformance suite rejects every mutant: the share rejected is the kit's strength.

Each mutant (tests/kit/mutants/<area>.py) is the reference with one component broken. The suite runs
on it in a process of its own, as a user would (forked from a server that imported torch and the kit:
tests/kit/run_suite.py, pytest_forked), restricted to that component with ``--component``, gated at the
mutant's own level (``Mutant.level``: ``--gate``) and stopped at the first failure at or below the gate
with ``-x`` (a strict mutant's run ends at its first failure rather than running the whole component). A
mutant is rejected at the level of the test of its own component that *failed* (a ``fail`` in the JSON
matrix; exit code 1 and "failed" in the summary at or below the gate, exit code 0 and "strict failed"
above it); a usage error, a crash, a timeout, or a component reported *missing* is not a kill. Each mutant
must be rejected at its own level or a lower one. The processes run concurrently, one
per CPU core; the terminal summary prints the kill table.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from spec import COMPONENTS
from spec.loading import load_implementation
from tests.harness.plugin import LEVELS
from tests.kit.mutants import BY_NAME, MUTANTS
from tests.kit.run_suite import pytest_forked
from tests.kit.verdicts import Verdict

TIMEOUT_S = 300


def run_suite_on(mutant_name: str, workdir: Path, env: dict[str, str]) -> Verdict:
    """Run the conformance suite on one mutant, restricted to its component; judge the outcome."""
    mutant = BY_NAME[mutant_name]
    report = workdir / f"{mutant.name}.json"
    log = workdir / f"{mutant.name}.log"
    returncode = pytest_forked(["tests/conformance", "-x", "-q", "-p", "no:cacheprovider", "--impl",
                                f"tests.kit.mutants:{mutant.name}", "--component", mutant.component, "--gate",
                                mutant.level, "--report-json", str(report)], log, env, TIMEOUT_S)
    if returncode is None:
        return Verdict(mutant.name, mutant.component, None, f"the suite ran past {TIMEOUT_S} s")
    output = log.read_text(errors="replace")
    if not report.exists():
        return Verdict(mutant.name, mutant.component, None, f"no report (exit code {returncode}): {output[-2000:]}")
    results = json.loads(report.read_text())
    assert results["implementation"]["name"] == f"mutant {mutant.name}", results["implementation"]
    failures = {level: [r for r in results["results"] if r["status"] == "fail" and r["level"] == level
                        and r["component"] == mutant.component] for level in LEVELS}
    gate = LEVELS.index(mutant.level)
    for index, level in enumerate(LEVELS):  # the exit code and pytest's summary line must agree with the report
        expected_code, pattern = (1, r"\b\d+ failed\b") if index <= gate else (0, r"\b\d+ strict failed\b")
        if failures[level] and returncode == expected_code and re.search(pattern, output):
            first = failures[level][0]
            message = (first["message"].splitlines() or [""])[0][:160]
            return Verdict(mutant.name, mutant.component, level, f"{first['nodeid']}: {message}")
    row = results["components"][mutant.component]
    if any(failures.values()):  # the report has the failure, the exit code or the summary line disagrees
        return Verdict(mutant.name, mutant.component, None,
                       f"exit code {returncode} and summary disagree with the report's failures ({mutant.component} "
                       f"row {row}); the run's output ends: {output[-1500:]}")
    return Verdict(mutant.name, mutant.component, None,
                   f"exit code {returncode}, {mutant.component} row {row}: no test of the component failed")


class Runs:
    """The mutants selected in this session, run concurrently; ``verdict(name)`` waits for one."""

    def __init__(self, names: list[str], workdir: Path):
        self.workdir = workdir
        # Every run is forked from a server that imported torch and the kit (run_suite.pytest_forked) and collects
        # the suite: the test modules' bytecode cached in a private directory, so nothing is written beside the
        # sources.
        self.env = {k: v for k, v in os.environ.items() if k not in ("CS336_IMPL", "PYTHONDONTWRITEBYTECODE")}
        self.env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
        self.pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
        self.futures: dict[str, Future] = {}
        for name in names:
            self.submit(name)

    def submit(self, name: str) -> Future:
        if name not in self.futures:
            self.futures[name] = self.pool.submit(run_suite_on, name, self.workdir, self.env)
        return self.futures[name]

    def verdict(self, name: str) -> Verdict:
        return self.submit(name).result()

    def close(self) -> None:
        for future in self.futures.values():
            future.cancel()
        self.pool.shutdown(wait=True)


@pytest.fixture(scope="session")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    selected = [item.callspec.params["mutant"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_suite_rejects_mutant"]
    runs = Runs(selected, tmp_path_factory.mktemp("mutants"))
    yield runs
    runs.close()


# The id carries the area (``-k alignment`` runs that area's mutants); the parameter is the mutant's name.
@pytest.mark.parametrize("mutant", [pytest.param(m.name, id=f"{COMPONENTS[m.component]}-{m.name}") for m in MUTANTS])
def test_suite_rejects_mutant(mutant, runs, record_verdict):
    """The conformance tests of the mutant's component fail on it (at least one test fails, nothing crashes), at
    the mutant's level or a lower one."""
    verdict, expected = runs.verdict(mutant), BY_NAME[mutant]
    record_verdict(verdict)
    assert verdict.killed, f"mutant {mutant} ({expected.description}) SURVIVED: {verdict.detail}"
    assert LEVELS.index(verdict.caught_at) <= LEVELS.index(expected.level), (
        f"mutant {mutant} ({expected.description}) is a {expected.level}-level mistake but only the "
        f"{verdict.caught_at} level rejected it: {verdict.detail}")


def test_mutant_table():
    """Unique identifier names; every spec component has a mutant; each differs from the reference in one member."""
    import impl

    assert len(BY_NAME) == len(MUTANTS), "duplicate mutant names"
    assert {m.component for m in MUTANTS} == set(COMPONENTS), "every spec component needs at least one mutant"
    for mutant in MUTANTS:
        assert mutant.name.isidentifier() and mutant.description and mutant.level in LEVELS, mutant
        members = mutant.implementation().members
        changed = {name for name in COMPONENTS if members[name] is not getattr(impl, name)}
        assert changed == {mutant.component}, f"{mutant.name} changes {sorted(changed)}"


def test_mutants_load_through_impl_option():
    """``--impl tests.kit.mutants:<name>`` resolves to the mutant's bundle, with the broken member."""
    for mutant in MUTANTS:
        bundle = load_implementation(f"tests.kit.mutants:{mutant.name}")
        assert bundle.name == f"mutant {mutant.name}"
        assert getattr(bundle, mutant.component) is mutant.broken


def test_tokenizer_mutants_run_and_differ_from_the_reference(tmp_path):
    """Each tokenizer mutant runs (no crash on a renamed internal of impl/, which the suite would count as a
    rejection) and behaves differently from the reference on a probe that shows its one change."""
    import lzma

    import impl
    from fixtures import FIXTURES_DIR
    from spec.gpt2_format import read_gpt2_files

    corpus = tmp_path / "corpus.txt"
    with lzma.open(FIXTURES_DIR / "data" / "corpus" / "prose_valid.txt.xz", "rt", encoding="utf-8") as f:
        prose = f.read(60_000)
    documents = [prose[i:i + 300] for i in range(0, len(prose), 300)] + [" I'm sure they'll say it's done"]
    corpus.write_text("<|endoftext|>".join(documents), encoding="utf-8")  # frequent specials: merging them shows
    reference_training = impl.train_bpe(corpus, 400, ["<|endoftext|>"])

    vocab, merges = read_gpt2_files(*(FIXTURES_DIR / "data" / "gpt2" / name for name in ("vocab.json", "merges.txt")))
    specials = ["<|endoftext|>", "<|endoftext|><|endoftext|>"]
    text = "Hello, don't  panic.\t \n\n<|endoftext|><|endoftext|> the end  "

    def behaviour(tokenizer_class):
        tokenizer, plain = tokenizer_class(vocab, merges, specials), tokenizer_class(vocab, merges)
        consumed = []

        def lines():
            for i in range(100):
                consumed.append(i)
                yield f"line {i}\n"

        next(iter(tokenizer.encode_iterable(lines())))
        try:
            decoded = tokenizer.decode([158, 222])  # a lone continuation byte, then a truncated 3-byte character
        except Exception as error:  # noqa: BLE001
            decoded = type(error).__name__
        return (tokenizer.encode(text), plain.encode(text), list(tokenizer.encode_iterable([text[:9], text[9:]])),
                decoded, len(consumed) < 100)

    reference_behaviour = behaviour(impl.Tokenizer)
    for mutant in MUTANTS:
        if mutant.component == "train_bpe":
            assert mutant.broken(corpus, 400, ["<|endoftext|>"]) != reference_training, mutant.name
        elif mutant.component == "Tokenizer":
            assert behaviour(mutant.broken) != reference_behaviour, mutant.name
