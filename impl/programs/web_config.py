"""The configuration of ``filter-web-data`` (impl/programs/filter_web_data.py): a TOML file, checked whole before any
work, every mistake one line naming the field.

    partitions = 4                 # tasks per corpus-wide step (line counts, LSH, verification); not the outputs
    [[filters]]                    # applied in this order; extract first, exact_line_dedup / minhash last
    name = "extract"
    [[filters]]
    name = "language"
    languages = ["en"]
    min_score = 0.5
    ...
    [output]
    tokenizer = ""                 # a train-bpe directory; "": GPT-2 (fixtures/data/gpt2)

``OPTIONS`` lists every filter's options with their defaults: impl/programs/configs/filter_web_data.toml is the
commented default. A filter's ``id`` names it in the counts (default: its name; a classifier's
``classifier:<label>``), so that two classifiers can run in one pipeline.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from impl.programs.cli import UserError

DOCUMENT_FILTERS = ("extract", "language", "gopher", "mask_pii", "classifier")  # one document at a time
CORPUS_FILTERS = ("exact_line_dedup", "minhash")  # need the whole corpus: stages of their own, in this order
# The names gopher_rule_failures gives, in the handout's order (tests/programs/test_filter_web_data.py checks them).
GOPHER_RULES = ("word_count", "mean_word_length", "ellipsis_lines", "alphabetic_words")
REQUIRED = object()

# filter -> option -> (default, kind); kinds: "bool", "int>=1", "int", "fraction" (a number in [0, 1]), "str",
# "path" (an existing fastText model file), "labels" (a non-empty list of strings), "rules", ("choice", ...)
OPTIONS: dict[str, dict[str, tuple]] = {
    "extract": {"max_replacement_fraction": (0.05, "fraction")},  # more U+FFFD than this: undecodable
    "language": {"languages": (["en"], "labels"), "min_score": (0.5, "fraction"), "model": ("", "path")},
    "gopher": {"rules": (list(GOPHER_RULES), "rules")},
    "mask_pii": {"emails": (True, "bool"), "phones": (True, "bool"), "ips": (True, "bool")},
    "classifier": {"model": (REQUIRED, "path"), "label": (REQUIRED, "str"),
                   "action": ("drop", ("choice", "drop", "keep")), "threshold": (0.5, "fraction")},
    "exact_line_dedup": {},
    "minhash": {"num_hashes": (128, "int>=1"), "num_bands": (16, "int>=1"), "ngrams": (5, "int>=1"),
                "threshold": (0.8, "fraction"), "seed": (0, "int")},
}
OUTPUT_OPTIONS = {"tokenizer": ("", "str"), "examples": (3, "int"), "snippet_chars": (100, "int>=1")}
TOP_LEVEL = ("filters", "output", "partitions")


class ConfigError(UserError):
    """A mistake in the config file; the message names the field."""


@dataclass(frozen=True)
class Filter:
    name: str  # the kind: one of OPTIONS
    id: str  # its name in the counts
    options: dict


@dataclass(frozen=True)
class PipelineConfig:
    filters: tuple[Filter, ...]
    output: dict
    partitions: int

    def filter(self, name: str) -> Filter | None:
        return next((f for f in self.filters if f.name == name), None)

    def as_dict(self) -> dict:
        """Every setting with the defaults filled in: what the run stores and hashes."""
        return {"partitions": self.partitions, "output": self.output,
                "filters": [{"name": f.name, "id": f.id, **f.options} for f in self.filters]}


def read_config(path: Path) -> PipelineConfig:
    if not path.is_file():
        raise ConfigError(f"--config {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"--config {path} is not valid TOML: {error}") from None
    try:
        return parse_config(raw)
    except ConfigError as error:
        raise ConfigError(f"--config {path}: {error}") from None


def parse_config(raw: dict) -> PipelineConfig:
    unknown = sorted(set(raw) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(f"unknown settings {unknown} (known: {', '.join(TOP_LEVEL)})")
    if not isinstance(raw.get("filters"), list) or not raw["filters"]:
        raise ConfigError("filters must be a non-empty array of tables ([[filters]] with name = ...)")
    filters = tuple(parse_filter(i, entry) for i, entry in enumerate(raw["filters"]))
    check_order(filters)
    output = options_of("output", raw.get("output", {}), OUTPUT_OPTIONS)
    if output["examples"] < 0:
        raise ConfigError(f"output.examples must be >= 0, got {output['examples']}")
    partitions = check_value("partitions", raw.get("partitions", 4), "int>=1")
    return PipelineConfig(filters, output, partitions)


def parse_filter(i: int, entry) -> Filter:
    where = f"filters[{i}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"{where} needs a name (one of {', '.join(OPTIONS)})")
    name = entry["name"]
    if name not in OPTIONS:
        raise ConfigError(f"{where}: unknown filter {name!r} (known: {', '.join(OPTIONS)})")
    where = f"{where} ({name})"
    given = {k: v for k, v in entry.items() if k not in ("name", "id")}
    options = options_of(where, given, OPTIONS[name])
    default_id = f"classifier:{options['label']}" if name == "classifier" else name
    filter_id = entry.get("id", default_id)
    if not isinstance(filter_id, str) or not filter_id or any(c.isspace() for c in filter_id):
        raise ConfigError(f"{where}.id must be a non-empty string without spaces, got {filter_id!r}")
    if name == "minhash" and options["num_hashes"] % options["num_bands"]:
        raise ConfigError(f"{where}.num_bands={options['num_bands']} must divide num_hashes={options['num_hashes']}")
    return Filter(name, filter_id, options)


def options_of(where: str, given: dict, known: dict[str, tuple]) -> dict:
    if not isinstance(given, dict):
        raise ConfigError(f"{where} must be a table, got {given!r}")
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown options {unknown} (known: {', '.join(known) or 'none'})")
    options = {}
    for option, (default, kind) in known.items():
        if option not in given and default is REQUIRED:
            raise ConfigError(f"{where}.{option} is required")
        options[option] = check_value(f"{where}.{option}", given.get(option, default), kind)
    return options


def check_value(field: str, value, kind):
    """``value`` if it is of ``kind``, else a ConfigError naming ``field``."""
    def wrong(expected: str):
        return ConfigError(f"{field} must be {expected}, got {value!r}")

    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool" and not isinstance(value, bool):
        raise wrong("true or false")
    if kind in ("int", "int>=1") and not is_int:
        raise wrong("an integer")
    if kind == "int>=1" and value < 1:
        raise wrong("an integer >= 1")
    if kind == "fraction":
        if not (is_int or isinstance(value, float)) or not math.isfinite(value):
            raise wrong("a number")
        if not 0 <= value <= 1:
            raise wrong("a number in [0, 1]")
        return float(value)
    if kind in ("str", "path") and not isinstance(value, str):
        raise wrong("a string")
    if kind == "labels" and (not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value)):
        raise wrong('a non-empty list of strings, e.g. ["en"]')
    if kind == "rules":
        if not isinstance(value, list) or not all(v in GOPHER_RULES for v in value):
            raise wrong(f"a list of rule names from {list(GOPHER_RULES)}")
        return [rule for rule in GOPHER_RULES if rule in value]  # the handout's order
    if isinstance(kind, tuple) and value not in kind[1:]:
        raise wrong(f"one of {', '.join(map(repr, kind[1:]))}")
    return value


def check_order(filters: tuple[Filter, ...]) -> None:
    names = [f.name for f in filters]
    if names[0] != "extract":
        raise ConfigError(f"filters[0] must be extract (HTML to text; WET records skip it), got {names[0]!r}")
    for i, f in enumerate(filters):
        if f.name == "extract" and i:
            raise ConfigError(f"filters[{i}]: extract may appear only once, first")
        if f.name in DOCUMENT_FILTERS and any(n in CORPUS_FILTERS for n in names[:i]):
            raise ConfigError(f"filters[{i}] ({f.name}) comes after a corpus-wide step: exact_line_dedup and minhash "
                              f"must come last")
    corpus = [n for n in names if n in CORPUS_FILTERS]
    if corpus != [n for n in CORPUS_FILTERS if n in corpus]:
        raise ConfigError("filters: exact_line_dedup must come before minhash (MinHash reads the deduplicated lines)")
    ids = [f.id for f in filters]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ConfigError(f"filters: {twice} appear twice; give each its own id = \"...\"")


FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")  # the first 4 bytes of every fastText model file (.bin, .ftz)


def check_models(config: PipelineConfig) -> dict[str, str]:
    """Every model file exists and is a fastText model, and every classifier's label is one of its model's labels:
    before any work. Returns {filter id: resolved model path}."""
    from impl.data.fasttext_model import model_at
    from impl.data.langid import default_language_model

    models = {}
    for i, f in enumerate(config.filters):
        if f.name not in ("language", "classifier"):
            continue
        path = Path(f.options["model"]) if f.options["model"] else default_language_model()
        field = f"filters[{i}] ({f.name}).model"
        if not path.is_file():
            raise ConfigError(f"{field}: {path} does not exist")
        with open(path, "rb") as file:
            if file.read(4) != FASTTEXT_MAGIC:
                raise ConfigError(f"{field}: {path} is not a fastText model file")
        models[f.id] = str(path.resolve())
        if f.name == "classifier":
            labels = model_at(path.resolve()).labels
            if f.options["label"] not in labels:
                raise ConfigError(f"{field}: {path} has no label {f.options['label']!r} (its labels: "
                                  f"{', '.join(labels[:20])})")
    return models
