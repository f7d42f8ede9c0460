"""The command line of the programs that train a policy (``sft``, ``grpo``): settings from a --config file and
flags, ``--resume``, the run through ``alignment_run.PolicyRun``, one line of summary. Torch is imported only once
the settings are read, so that ``--help`` and mistakes come at once."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from impl.programs.cli import ArgumentParser, run
from impl.programs.settings import add_setting_flags, given_settings


def policy_program(program: str, description: str, config_class, check: Callable, one_step: Callable,
                   panels: list[tuple[str, str]], title: Callable) -> Callable[[list[str] | None], int]:
    """The ``main`` of a policy-training program: ``one_step(runner) -> metrics row`` is its step, ``panels`` what
    curves.png plots, ``title(cfg)`` the plot's title."""

    def body(args: argparse.Namespace) -> int:
        from impl.programs.alignment_run import PolicyRun  # torch

        given = given_settings(args, config_class, program)
        check(config_class(**given))
        runner = PolicyRun(program, config_class(**given), args.resume, given)
        try:
            check(runner.cfg)  # a resumed run's settings, with the flags given
            summary = runner.run(one_step, panels, title(runner.cfg))
        finally:
            runner.close()
        print(f"{program}: {json.dumps(summary)}; wrote {runner.out_dir}/{{checkpoint.pt,metrics.jsonl,curves.png}}")
        return 0

    def main(argv: list[str] | None = None) -> int:
        parser = ArgumentParser(program, f"{description} Every setting is a flag and a key of the --config file.")
        parser.add_argument("--resume", action="store_true", help="continue <out-dir>/checkpoint.pt with its settings")
        add_setting_flags(parser, config_class)
        return run(parser, argv, body)

    return main
