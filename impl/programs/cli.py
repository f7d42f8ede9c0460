"""The programs' one error path: a user's mistake is one line on stderr and a non-zero exit.

Every program builds its parser with ``ArgumentParser`` and runs its body through ``run``:

    def main(argv=None) -> int:
        parser = ArgumentParser("train-bpe", "Train a byte-level BPE tokenizer (A1 §2.5).")
        parser.add_argument("--vocab-size", type=positive_int, default=10_000, help="...")
        return run(parser, argv, body)          # body(args) -> exit code, raises UserError for mistakes

A mistake — a bad flag or value, a missing or unreadable file, a corrupt or foreign checkpoint, a GPU that is
not there, a full disk — raises ``UserError`` (or is an ``OSError``, which names its file) and ends as

    train-bpe: error: --input corpus.bin is not UTF-8 text: byte 0x89 at offset 0

with exit code 1 (2 for a command-line usage error, as argparse). ``--debug`` shows the traceback instead; any
other exception is a bug and keeps its traceback. Ctrl-C is one line and exit code 130. Nothing here imports
torch: ``--help`` and argument errors come before any heavy import.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

USER_ERROR_EXIT = 1
USAGE_EXIT = 2  # argparse's
INTERRUPTED_EXIT = 130  # the shell's for SIGINT


class UserError(Exception):
    """A mistake in the program's input; the message names the thing and says what to do."""


class UsageError(UserError):
    """A command-line mistake (an unknown flag, a value of the wrong type)."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in its help, but not a non-value (None, False, ""), which the help text explains."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == "":
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with every option's default in its help, ``--debug``, and one-line usage errors (argparse prints
    the whole usage first: 40 lines for ``train``)."""

    def __init__(self, prog: str, description: str, **kwargs):
        super().__init__(prog=prog, description=description, formatter_class=HelpFormatter,
                         **kwargs)
        self.add_argument("--debug", action="store_true", help="show the traceback of an error")

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def run(parser: ArgumentParser, argv: list[str] | None, body: Callable[[argparse.Namespace], int]) -> int:
    """Parse ``argv`` and call ``body``; a UserError or OSError becomes one line on stderr and an exit code."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        return body(parser.parse_args(argv))
    except (UserError, OSError) as error:
        if debug:
            raise
        print(f"{parser.prog}: error: {describe(error)}", file=sys.stderr)
        return USAGE_EXIT if isinstance(error, UsageError) else USER_ERROR_EXIT
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT


def describe(error: Exception) -> str:
    """One line for an error: an OSError as "<what went wrong>: <file>", anything else its message."""
    if isinstance(error, OSError) and error.strerror:
        files = " -> ".join(str(f) for f in (error.filename, error.filename2) if f is not None)
        return f"{error.strerror}: {files}" if files else error.strerror
    return " ".join(str(error).split()) or type(error).__name__


def gist(error: Exception) -> str:
    """The first sentence of a library's error that says what is wrong (torch's run to a paragraph)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):  # a heading ("Error(s) in loading state_dict for X:"), then the errors
        lines = lines[1:]
    return lines[0].split(". ")[0].rstrip(".") if lines else type(error).__name__


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
