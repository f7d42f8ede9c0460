"""Fixtures of the program tests."""

from pathlib import Path

import pytest

from tests.programs.prose_tokens import write_prose_tokens
from tests.programs.tiny_training import write_corpus


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The tiny training setup's Markov corpus (tests/programs/tiny_training.py), once per test module."""
    return write_corpus(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def prose_tokens(tmp_path_factory) -> Path:
    """tests/programs/prose_tokens.py's data, once per session."""
    return write_prose_tokens(tmp_path_factory.mktemp("prose-tokens"))
