"""The ``train`` program: a Transformer LM trained from a config file (A1 §5.3, §7).

    train --config configs/prose.toml                       # or no config: the defaults (train --help)
    train --config configs/prose.toml --max-steps 2000 --lr-max 3e-3
    train --out-dir runs/lm --resume                       # continue exactly where it stopped
    train --out-dir runs/lm --resume --max-steps 8000 --override   # continue with changed settings
    torchrun --standalone --nproc-per-node 2 -m impl.programs.train --parallel ddp ...   # data parallel

Settings: TrainConfig's defaults < the TOML file < flags. ``--resume`` starts from the settings saved in the
checkpoint instead of the defaults, so that the run goes on as it was; a file or flag that changes what the run
computes (``TRAJECTORY_FIELDS``: the model, data, schedule, optimizer, batch, seed, precision) is refused, naming
each, unless ``--override``. Where it runs, and how often it logs, evaluates and saves, may change freely; the
data-parallel settings are the launch's own (``LAUNCH_FIELDS``: give ``--parallel`` again under torchrun).

This module parses and checks the settings without importing torch (``--help`` and mistakes come at once); the
run itself is impl/programs/trainer.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from impl.programs.checkpoints import load_run_checkpoint
from impl.programs.cli import ArgumentParser, UsageError, run
from impl.programs.config import LAUNCH_FIELDS, TrainConfig, check_config
from impl.programs.settings import add_setting_flags
from impl.programs.settings import given_settings as read_settings


def build_parser() -> ArgumentParser:
    world = os.environ.get("WORLD_SIZE", "1")
    rank = f" (rank {os.environ.get('RANK')} of {world})" if world != "1" else ""  # errors say which rank
    parser = ArgumentParser(f"train{rank}", "Train a Transformer LM (A1 §5.3). Every setting is a flag and a key of "
                                            "the --config file.")
    parser.add_argument("--resume", action="store_true", help="continue <out-dir>/checkpoint.pt with its settings")
    parser.add_argument("--override", action="store_true",
                        help="with --resume: go on with settings that change what the run computes")
    add_setting_flags(parser, TrainConfig)
    return parser


def given_settings(args: argparse.Namespace) -> dict:
    """The settings of the --config file, then of the flags given."""
    return read_settings(args, TrainConfig, "train")


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv, train)


def train(args: argparse.Namespace) -> int:
    if args.override and not args.resume:
        raise UsageError("--override applies to --resume only")
    given = given_settings(args)
    out_dir = Path(given.get("out_dir", TrainConfig.out_dir))
    checkpoint = None
    if args.resume:
        checkpoint = load_run_checkpoint(out_dir / "checkpoint.pt")
        # The checkpoint's settings as they were given ("auto" device...) but the launch's own; where the run now lies.
        saved = {name: value for name, value in checkpoint["settings"].items() if name not in LAUNCH_FIELDS}
        cfg = TrainConfig(**{**saved, **given, "out_dir": str(out_dir)})
    else:
        cfg = TrainConfig(**given)
    check_config(cfg)

    from impl.programs.trainer import Trainer  # torch

    trainer = None
    try:
        trainer = Trainer(cfg, checkpoint, override=args.override)
        del checkpoint  # its tensors are in the model and optimizer now
        summary = trainer.run()
    finally:
        if trainer is not None:
            trainer.close()
    if trainer.dp.is_main:
        print(f"train: {json.dumps(summary)}; wrote {trainer.out_dir}/{{checkpoint.pt,metrics.jsonl,loss.png}}")
    return 0


if __name__ == "__main__":
    code = main()
    if os.environ.get("WORLD_SIZE", "1") != "1":
        from impl.programs.launch import exit_rank

        exit_rank(code)  # a rank of torchrun
    sys.exit(code)
