"""Settings of the programs that run from a config: a dataclass whose fields are both the keys of a TOML file and
``--flags`` (``train``, ``sft``, ``grpo``, ``evaluate``). Defaults < the --config file < the flags given.

    @dataclass
    class MyConfig:
        lr: float = setting(1e-3, "learning rate")               # the help text is the flag's
        loss: str = setting("grpo_clip", "the loss", ("grpo_clip", "no_baseline"))

``check_field_types`` refuses a wrong type, a non-finite number or a value outside the choices, naming the field;
each program checks the rules between its fields itself. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tomllib
from dataclasses import field
from pathlib import Path

from impl.programs.cli import UserError

KINDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}
TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool}


class ConfigError(UserError):
    """A setting of the wrong type or out of range; the message names it."""


def setting(default, help: str, choices: tuple[str, ...] | None = None):
    return field(default=default, metadata={"help": help, "choices": choices})


def fields_of(config_class) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(config_class)}


def add_setting_flags(parser: argparse.ArgumentParser, config_class) -> None:
    """``--config FILE`` and one ``--name`` flag per field (``--no-name`` too for booleans)."""
    parser.add_argument("--config", type=Path, help="TOML file of settings (the names below with underscores)")
    for f in fields_of(config_class).values():
        # SUPPRESS: a flag not given is absent from the parsed namespace, so that the file's settings (and a
        # checkpoint's, on a resume) are overridden only by flags actually given.
        default = f" (default: {f.default})" if f.default != "" else ""
        help = f"{f.metadata['help']}{default}".replace("%", "%%")
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help)
        else:
            parser.add_argument(flag, type={"int": int, "float": float, "str": str}[f.type],
                                choices=f.metadata["choices"], default=argparse.SUPPRESS, help=help)


def given_settings(args: argparse.Namespace, config_class, program: str) -> dict:
    """The settings of the --config file, then of the flags given."""
    names = fields_of(config_class)
    given = {}
    if args.config is not None:
        if not args.config.is_file():
            raise UserError(f"--config {args.config} does not exist")
        try:
            given = tomllib.loads(args.config.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"--config {args.config} is not valid TOML: {error}") from None
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise UserError(f"--config {args.config}: unknown settings {unknown} ({program} --help lists them)")
    return given | {name: value for name, value in vars(args).items() if name in names}


def check_field_types(cfg) -> None:
    """Each field's type, finiteness and choices."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if not isinstance(value, TYPES[f.type]) or (f.type != "bool" and isinstance(value, bool)):
            raise ConfigError(f"{f.name} must be {KINDS[f.type]}, got {value!r}")
        if f.type == "float" and not math.isfinite(value):
            raise ConfigError(f"{f.name} must be finite, got {value!r}")
        if f.metadata["choices"] and value not in f.metadata["choices"]:
            raise ConfigError(f"{f.name} must be one of {', '.join(f.metadata['choices'])}, got {value!r}")


def check_rules(rules: list[tuple[bool, str]]) -> None:
    """The first rule that does not hold, as a ConfigError with its message."""
    for holds, message in rules:
        if not holds:
            raise ConfigError(message)
