"""Bad input for every program: the mistakes a user makes, each of which must end in one line on stderr naming the
problem and a non-zero exit, with nothing partial left behind (tests/programs/test_bad_input.py).

    python -m tests.programs.bad_inputs        # the table: program, mistake, exit code, the line printed

The cases run the programs' ``main`` in this process on a small world of real files (``make_world``): a corpus, a
tokenizer, token arrays and a checkpoint, each made by the programs themselves.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fixtures import FIXTURES_DIR
from impl.programs import (corpora, dpo, embedded_run, evaluate, filter_web_data, fit_scaling_laws, generate, grpo,
                           sft, tokenizer, train, train_classifier, training_api, training_api_client)
from impl.programs.corpora import EOT

PROGRAMS: dict[str, Callable[[list[str]], int]] = {
    "train-bpe": tokenizer.train_main, "tokenize": tokenizer.tokenize_main, "train": train.main,
    "generate": generate.main, "embedded-run": embedded_run.main, "fetch-corpus": corpora.main,
    "filter-web-data": filter_web_data.main,
    "train-classifier": train_classifier.main, "sft": sft.main, "grpo": grpo.main, "dpo": dpo.main,
    "evaluate": evaluate.main, "fit-scaling-laws": fit_scaling_laws.main, "training-api": training_api.main,
    "training-api-client": training_api_client.main,
}
TINY_MODEL = ["--d-model", "32", "--num-layers", "1", "--num-heads", "2", "--d-ff", "64", "--context-length", "16",
              "--batch-size", "4", "--warmup-steps", "1", "--eval-batches", "1", "--max-steps", "2"]


@dataclass
class Case:
    program: str
    mistake: str  # what the user did, as the table says it
    argv: Callable[[Path], list[str]]  # from the world's directory
    says: str  # a piece of the one line printed
    exit_code: int = 1  # 2 for command-line usage errors (argparse's)
    setup: Callable[[Path], None] | None = None  # files the case needs, made in its own directory
    leaves_no: tuple[str, ...] = ()  # outputs, relative to the case directory, that must not exist afterwards


def write(name: str, content: bytes | str) -> Callable[[Path], None]:
    def make(case_dir: Path) -> None:
        path = case_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return make


def malicious_checkpoint(case_dir: Path) -> None:
    """A checkpoint whose unpickling would run a command (it would create ``pwned``)."""
    import torch

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {case_dir / 'pwned'}",)

    (case_dir / "run").mkdir()
    torch.save({"model": Payload(), "optimizer": {}, "iteration": 1}, case_dir / "run" / "checkpoint.pt")


def truncated_checkpoint(world: Path) -> Callable[[Path], None]:
    def make(case_dir: Path) -> None:
        (case_dir / "run").mkdir()
        whole = (world / "run" / "checkpoint.pt").read_bytes()
        (case_dir / "run" / "checkpoint.pt").write_bytes(whole[: len(whole) // 2])
    return make


def reshaped_checkpoint(world: Path) -> Callable[[Path], None]:
    """The world's checkpoint with a config that describes another model than its weights."""
    def make(case_dir: Path) -> None:
        import torch

        checkpoint = torch.load(world / "run" / "checkpoint.pt", weights_only=True)
        checkpoint["config"]["d_model"] = 64
        (case_dir / "run").mkdir()
        torch.save(checkpoint, case_dir / "run" / "checkpoint.pt")
    return make


def other_tokenizer(world: Path) -> Callable[[Path], None]:
    """A tokenizer of another run: trained on other text, the same size (only the files' hashes tell)."""
    def make(case_dir: Path) -> None:
        (case_dir / "other.txt").write_text("".join(f"{i} zebra{i % 97} quokka{i % 89}. " for i in range(3000)))
        assert tokenizer.train_main(["--input", str(case_dir / "other.txt"), "--vocab-size", "300",
                                     "--out", str(case_dir / "other_tok")]) == 0
    return make


def make_world(world: Path) -> None:
    """corpus.txt, tok/ (300 tokens), train.npy / valid.npy, and run/checkpoint.pt of a 2-step tiny LM."""
    text = "".join(f"Chapter {i}. It is a truth universally acknowledged, said Elizabeth.{EOT}" for i in range(400))
    (world / "corpus.txt").write_text(text)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert tokenizer.train_main(["--input", str(world / "corpus.txt"), "--vocab-size", "300",
                                     "--out", str(world / "tok"), "--workers", "1"]) == 0
        for split in ("train", "valid"):
            assert tokenizer.tokenize_main(["--tokenizer", str(world / "tok"), "--input", str(world / "corpus.txt"),
                                            "--out", str(world / f"{split}.npy"), "--workers", "1"]) == 0
        assert train.main(data_args(world, world / "run")) == 0


def data_args(world: Path, out: Path) -> list[str]:
    return ["--train-data", str(world / "train.npy"), "--valid-data", str(world / "valid.npy"), "--out-dir", str(out),
            "--device", "cpu", *TINY_MODEL]


PROSE_WARC = str(FIXTURES_DIR / "data" / "web" / "prose.warc.gz")
EXTRACT = '[[filters]]\nname = "extract"\n'


def web(case_dir: Path, *flags: str, inputs: tuple[str, ...] = (PROSE_WARC,)) -> list[str]:
    """filter-web-data's arguments: the prose WARC into ``out``, with ``c.toml`` when the case writes one."""
    config = ["--config", str(case_dir / "c.toml")] if (case_dir / "c.toml").exists() else []
    return [*inputs, *config, "--out", str(case_dir / "out"), "--workers", "1", *flags]


def finished_web_run(case_dir: Path) -> None:
    """A run of the extract-only pipeline in ``out``; the case then writes another config into c.toml."""
    (case_dir / "first.toml").write_text(EXTRACT)
    assert filter_web_data.main([PROSE_WARC, "--config", str(case_dir / "first.toml"), "--out", str(case_dir / "out"),
                                 "--workers", "1"]) == 0
    (case_dir / "c.toml").write_text(EXTRACT + '[[filters]]\nname = "minhash"\n')


def cases(world: Path) -> list[Case]:
    w = world
    return [
        # train-bpe
        Case("train-bpe", "input file missing", lambda d: ["--input", str(d / "nope.txt"), "--out", str(d / "tok")],
             "--input", leaves_no=("tok",)),
        Case("train-bpe", "input is a directory", lambda d: ["--input", str(d), "--out", str(d / "tok")],
             "is not a file", leaves_no=("tok",)),
        Case("train-bpe", "input is empty", lambda d: ["--input", str(d / "empty.txt"), "--out", str(d / "tok")],
             "is empty", setup=write("empty.txt", ""), leaves_no=("tok",)),
        Case("train-bpe", "input is binary (a PNG)", lambda d: ["--input", str(d / "x.png"), "--out", str(d / "tok")],
             "x.png is not UTF-8 text: byte 0x89 at offset 0", setup=write("x.png", b"\x89PNG\r\n\x1a\n" + bytes(64)),
             leaves_no=("tok",)),
        Case("train-bpe", "input is Latin-1", lambda d: ["--input", str(d / "l1.txt"), "--out", str(d / "tok")],
             "l1.txt is not UTF-8 text: byte 0xe9 at offset 7", setup=write("l1.txt", "hello\nd\xe9j\xe0 vu\n".encode("latin-1")),
             leaves_no=("tok",)),
        Case("train-bpe", "vocabulary smaller than the bytes",
             lambda d: ["--input", str(w / "corpus.txt"), "--vocab-size", "100", "--out", str(d / "tok")],
             "vocab_size=100 is smaller than the 256 bytes", leaves_no=("tok",)),
        Case("train-bpe", "vocabulary size 0", lambda d: ["--vocab-size", "0", "--out", str(d / "tok")],
             "argument --vocab-size: must be >= 1, got 0", exit_code=2, leaves_no=("tok",)),
        Case("train-bpe", "an existing file as --out",
             lambda d: ["--input", str(w / "corpus.txt"), "--vocab-size", "300", "--out", str(d / "file")],
             "exists and is not a directory", setup=write("file", "keep me")),
        Case("train-bpe", "an empty special token",
             lambda d: ["--input", str(w / "corpus.txt"), "--special-token", "", "--out", str(d / "tok")],
             "special token", leaves_no=("tok",)),
        # tokenize
        Case("tokenize", "tokenizer directory missing",
             lambda d: ["--tokenizer", str(d / "nope"), "--input", str(w / "corpus.txt"), "--out", str(d / "t.npy")],
             "no vocab.json or merges.txt", leaves_no=("t.npy", "t.json")),
        Case("tokenize", "tokenizer files corrupt",
             lambda d: ["--tokenizer", str(d / "tok"), "--input", str(w / "corpus.txt"), "--out", str(d / "t.npy")],
             "is not readable as train-bpe writes it",
             setup=lambda d: (write("tok/vocab.json", "{not json")(d), write("tok/merges.txt", "")(d)),
             leaves_no=("t.npy", "t.json")),
        Case("tokenize", "input is Latin-1",
             lambda d: ["--tokenizer", str(w / "tok"), "--input", str(d / "l1.txt"), "--out", str(d / "t.npy")],
             "l1.txt is not UTF-8 text: byte 0xe9 at offset 1", setup=write("l1.txt", "d\xe9j\xe0 vu\n".encode("latin-1")),
             leaves_no=("t.npy", "t.json")),
        Case("tokenize", "input is empty",
             lambda d: ["--tokenizer", str(w / "tok"), "--input", str(d / "empty.txt"), "--out", str(d / "t.npy")],
             "is empty", setup=write("empty.txt", ""), leaves_no=("t.npy", "t.json")),
        Case("tokenize", "--out is a directory",
             lambda d: ["--tokenizer", str(w / "tok"), "--input", str(w / "corpus.txt"), "--out", str(d)],
             "is a directory"),
        Case("tokenize", "--tokenizer not given", lambda d: ["--out", str(d / "t.npy")],
             "the following arguments are required: --tokenizer", exit_code=2, leaves_no=("t.npy",)),
        # train
        Case("train", "config file missing", lambda d: ["--config", str(d / "nope.toml")], "nope.toml does not exist"),
        Case("train", "config file not TOML", lambda d: ["--config", str(d / "c.toml"), *data_args(w, d / "run")],
             "is not valid TOML", setup=write("c.toml", "d_model = = 3\n"), leaves_no=("run",)),
        Case("train", "an unknown setting", lambda d: ["--config", str(d / "c.toml"), *data_args(w, d / "run")],
             "unknown settings ['d_modle']", setup=write("c.toml", "d_modle = 64\n"), leaves_no=("run",)),
        Case("train", "a string where a number belongs",
             lambda d: ["--config", str(d / "c.toml"), *data_args(w, d / "run")],
             "lr_max must be a number, got 'fast'", setup=write("c.toml", 'lr_max = "fast"\n'), leaves_no=("run",)),
        Case("train", "a flag value of the wrong type", lambda d: [*data_args(w, d / "run"), "--max-steps", "ten"],
             "argument --max-steps: invalid int value: 'ten'", exit_code=2, leaves_no=("run",)),
        Case("train", "heads not dividing d_model", lambda d: [*data_args(w, d / "run"), "--num-heads", "3"],
             "num_heads=3 does not divide d_model=32", leaves_no=("run",)),
        Case("train", "key/value heads not dividing the heads",
             lambda d: [*data_args(w, d / "run"), "--num-kv-heads", "3"],
             "num_kv_heads=3 does not divide num_heads=", leaves_no=("run",)),
        Case("train", "an odd head_dim", lambda d: [*data_args(w, d / "run"), "--head-dim", "7"],
             "head_dim=7 must be even", leaves_no=("run",)),
        Case("train", "a negative learning rate", lambda d: [*data_args(w, d / "run"), "--lr-max=-1e-3"],
             "must be > 0: lr_max=-0.001", leaves_no=("run",)),
        Case("train", "zero steps", lambda d: [*data_args(w, d / "run"), "--max-steps", "0"],
             "max_steps=0", leaves_no=("run",)),
        Case("train", "a GPU this machine does not have", lambda d: [*data_args(w, d / "run"), "--device", "cuda:99"],
             "CUDA GPU", leaves_no=("run",)),
        Case("train", "a device name that is none", lambda d: [*data_args(w, d / "run"), "--device", "gpu"],
             "device 'gpu' is not a device name", leaves_no=("run",)),
        Case("train", "data file missing", lambda d: [*data_args(w, d / "run"), "--train-data", str(d / "nope.npy")],
             "nope.npy does not exist", leaves_no=("run",)),
        Case("train", "data file not a token array",
             lambda d: [*data_args(w, d / "run"), "--train-data", str(d / "x.npy"), "--vocab-size", "300"],
             "is not a token array", setup=write("x.npy", "just text"), leaves_no=("run",)),
        Case("train", "--override without --resume", lambda d: [*data_args(w, d / "run"), "--override"],
             "--override applies to --resume only", exit_code=2, leaves_no=("run",)),
        Case("train", "--resume with no checkpoint", lambda d: ["--out-dir", str(d / "run"), "--resume"],
             "checkpoint.pt does not exist", leaves_no=("run",)),
        Case("train", "--resume from a truncated checkpoint", lambda d: ["--out-dir", str(d / "run"), "--resume"],
             "is not a checkpoint of the train program", setup=truncated_checkpoint(w)),
        Case("train", "--resume from a malicious checkpoint", lambda d: ["--out-dir", str(d / "run"), "--resume"],
             "is not a checkpoint of the train program", setup=malicious_checkpoint, leaves_no=("pwned",)),
        Case("train", "--resume with another learning rate",
             lambda d: ["--out-dir", str(w / "run"), "--resume", "--lr-max", "5e-4"],
             "--resume would change what"),
        Case("train", "an existing run without --resume", lambda d: data_args(w, w / "run"), "pass --resume"),
        # generate
        Case("generate", "checkpoint missing", lambda d: ["--run", str(d / "run")], "checkpoint.pt does not exist"),
        Case("generate", "a truncated checkpoint", lambda d: ["--run", str(d / "run")],
             "is not a checkpoint of the train program", setup=truncated_checkpoint(w)),
        Case("generate", "a malicious checkpoint", lambda d: ["--run", str(d / "run")],
             "is not a checkpoint of the train program", setup=malicious_checkpoint, leaves_no=("pwned",)),
        Case("generate", "weights of another shape than the config", lambda d: ["--run", str(d / "run")],
             "its weights do not fit the model its config describes", setup=reshaped_checkpoint(w)),
        Case("generate", "a tokenizer of another run",
             lambda d: ["--run", str(w / "run"), "--tokenizer", str(d / "other_tok")],
             "is not the one", setup=other_tokenizer(w)),
        Case("generate", "a GPU this machine does not have", lambda d: ["--run", str(w / "run"), "--device", "cuda:99"],
             "CUDA GPU"),
        Case("generate", "top-p of 0", lambda d: ["--run", str(w / "run"), "--top-p", "0"],
             "argument --top-p: must lie in (0, 1], got 0.0", exit_code=2),
        # embedded-run: checked before the tokenizer work
        Case("embedded-run", "config file missing",
             lambda d: ["--out-dir", str(d / "e"), "--config", str(d / "nope.toml")], "nope.toml does not exist",
             leaves_no=("e",)),
        Case("embedded-run", "--max-steps 0", lambda d: ["--out-dir", str(d / "e"), "--max-steps", "0"],
             "argument --max-steps: must be >= 1, got 0", exit_code=2, leaves_no=("e",)),
        Case("embedded-run", "--max-steps below the warm-up", lambda d: ["--out-dir", str(d / "e"), "--max-steps", "5"],
             "warmup_steps=30 must lie in [0, max_steps=5]", leaves_no=("e",)),
        Case("embedded-run", "a non-empty --out-dir", lambda d: ["--out-dir", str(d / "e")],
             "is not an empty directory", setup=write("e/keep.txt", "keep me")),
        # fetch-corpus
        Case("fetch-corpus", "an unknown corpus", lambda d: ["wikipedia"], "invalid choice: 'wikipedia'", exit_code=2),
        # filter-web-data: every mistake found before any work
        Case("filter-web-data", "input file missing", lambda d: web(d, inputs=(str(d / "nope.warc.gz"),)),
             "nope.warc.gz does not exist", leaves_no=("out",)),
        Case("filter-web-data", "a glob that matches nothing", lambda d: web(d, inputs=(str(d / "*.warc.gz"),)),
             "*.warc.gz matches no file", leaves_no=("out",)),
        Case("filter-web-data", "input is not a WARC file", lambda d: web(d, inputs=(str(d / "notes.txt"),)),
             "notes.txt is not a WARC or WET file", setup=write("notes.txt", "just text\n"), leaves_no=("out",)),
        Case("filter-web-data", "config file missing", lambda d: [*web(d), "--config", str(d / "nope.toml")],
             "nope.toml does not exist", leaves_no=("out",)),
        Case("filter-web-data", "config file not TOML", web, "is not valid TOML",
             setup=write("c.toml", "filters = [\n"), leaves_no=("out",)),
        Case("filter-web-data", "an unknown filter", web, "filters[1]: unknown filter 'langauge'",
             setup=write("c.toml", EXTRACT + '[[filters]]\nname = "langauge"\n'), leaves_no=("out",)),
        Case("filter-web-data", "a threshold out of range", web,
             "filters[1] (minhash).threshold must be a number in [0, 1], got 1.5",
             setup=write("c.toml", EXTRACT + '[[filters]]\nname = "minhash"\nthreshold = 1.5\n'), leaves_no=("out",)),
        Case("filter-web-data", "a string where a number belongs", web,
             "filters[1] (language).min_score must be a number, got 'high'",
             setup=write("c.toml", EXTRACT + '[[filters]]\nname = "language"\nmin_score = "high"\n'),
             leaves_no=("out",)),
        Case("filter-web-data", "an option misspelt", web, "filters[1] (minhash): unknown options ['treshold']",
             setup=write("c.toml", EXTRACT + '[[filters]]\nname = "minhash"\ntreshold = 0.8\n'), leaves_no=("out",)),
        Case("filter-web-data", "bands that do not divide the hashes", web,
             "num_bands=7 must divide num_hashes=128",
             setup=write("c.toml", EXTRACT + '[[filters]]\nname = "minhash"\nnum_bands = 7\n'), leaves_no=("out",)),
        Case("filter-web-data", "extract not first", web, "filters[0] must be extract",
             setup=write("c.toml", '[[filters]]\nname = "gopher"\n' + EXTRACT), leaves_no=("out",)),
        Case("filter-web-data", "a classifier model file missing", web, "nope.bin does not exist",
             setup=lambda d: write("c.toml", EXTRACT + f'[[filters]]\nname = "classifier"\nmodel = "{d}/nope.bin"\n'
                                                       'label = "spam"\n')(d), leaves_no=("out",)),
        Case("filter-web-data", "a model file that is not fastText's", web, "model.bin is not a fastText model file",
             setup=lambda d: (write("model.bin", "not a model")(d), write("c.toml", EXTRACT + '[[filters]]\nname = '
                              f'"classifier"\nmodel = "{d}/model.bin"\nlabel = "spam"\n')(d)), leaves_no=("out",)),
        Case("filter-web-data", "a rerun with a changed config", web,
             "holds a run with other settings (filters[1]: (none) -> {\"name\": \"minhash\"", setup=finished_web_run),
        Case("filter-web-data", "an existing file as --out", lambda d: [*web(d)[:-4], "--out", str(d / "file")],
             "exists and is not a directory", setup=write("file", "keep me")),
        Case("filter-web-data", "--out holds other files", web, "is not empty and holds no filter-web-data run",
             setup=write("out/keep.txt", "keep me")),
        Case("filter-web-data", "--address without --engine ray", lambda d: [*web(d), "--address", "auto"],
             "--address applies to --engine ray only", exit_code=2, leaves_no=("out",)),
        Case("filter-web-data", "--workers 0", lambda d: [*web(d), "--workers", "0"],
             "argument --workers: must be >= 1, got 0", exit_code=2, leaves_no=("out",)),
        # train-classifier: all checked before any download or training
        Case("train-classifier", "an unknown task", lambda d: ["--task", "spam", "--out", str(d / "m")],
             "invalid choice: 'spam'", exit_code=2, leaves_no=("m",)),
        Case("train-classifier", "--data without a label's directory",
             lambda d: ["--task", "quality", "--data", str(d / "data"), "--out", str(d / "m")],
             "no directory quality/cc", setup=labelled_documents({"quality/wiki": 3}), leaves_no=("m",)),
        Case("train-classifier", "--data with one document of a label",
             lambda d: ["--task", "quality", "--data", str(d / "data"), "--out", str(d / "m")],
             "quality/cc has fewer than 2 .txt documents",
             setup=labelled_documents({"quality/wiki": 3, "quality/cc": 1}), leaves_no=("m",)),
        Case("train-classifier", "--data too small to hold any document out",
             lambda d: ["--task", "quality", "--data", str(d / "data"), "--out", str(d / "m")],
             "leave no held-out set", setup=labelled_documents({"quality/wiki": 3, "quality/cc": 3}),
             leaves_no=("m",)),
        Case("train-classifier", "--data with a document that is not UTF-8",
             lambda d: ["--task", "quality", "--data", str(d / "data"), "--out", str(d / "m")],
             "latin1.txt is not UTF-8 text: byte 0xe9 at offset 1",
             setup=lambda d: (labelled_documents({"quality/wiki": 3, "quality/cc": 3})(d),
                              write("data/quality/cc/latin1.txt", "d\xe9j\xe0 vu".encode("latin-1"))(d)),
             leaves_no=("m",)),
        Case("train-classifier", "--leave-one-source-out with --data",
             lambda d: ["--data", str(d), "--leave-one-source-out", "--out", str(d / "m")],
             "does not apply to --data", exit_code=2, leaves_no=("m",)),
        Case("train-classifier", "an existing file as --out", lambda d: ["--task", "quality", "--out", str(d / "file")],
             "exists and is not a directory", setup=write("file", "keep me")),
        # sft, grpo, evaluate: settings, policies and prompts checked before the run touches its directory
        Case("sft", "a learning rate of 0", lambda d: ["--out-dir", str(d / "s"), "--learning-rate", "0"],
             "these settings must be > 0: learning_rate=0", leaves_no=("s",)),
        Case("sft", "the arithmetic task with the r1_zero prompt",
             lambda d: ["--out-dir", str(d / "s"), "--prompt", "r1_zero"],
             "the arithmetic task uses the bare or the alpaca prompt, not r1_zero", leaves_no=("s",)),
        Case("sft", "prompts longer than the policy's context",
             lambda d: ["--out-dir", str(d / "s"), "--task", "gsm8k", "--prompt", "r1_zero"],
             "tokens: the policy's context holds 256 (kit-tiny)", leaves_no=("s",)),
        Case("grpo", "a group of one", lambda d: ["--out-dir", str(d / "g"), "--group-size", "1"],
             "group_size=1 must be >= 2", leaves_no=("g",)),
        Case("grpo", "rollouts that do not fill whole groups",
             lambda d: ["--out-dir", str(d / "g"), "--rollout-batch-size", "30"],
             "rollout_batch_size=30 must be a positive multiple of group_size=8", leaves_no=("g",)),
        Case("grpo", "a policy that is nothing", lambda d: ["--out-dir", str(d / "g"), "--policy", str(d / "nope")],
             "not kit-tiny, smollm2, a Hugging Face model directory", leaves_no=("g",)),
        Case("grpo", "--resume with no checkpoint", lambda d: ["--out-dir", str(d / "g"), "--resume"],
             "checkpoint.pt does not exist", leaves_no=("g",)),
        Case("grpo", "--resume from a truncated checkpoint", lambda d: ["--out-dir", str(d / "g"), "--resume"],
             "is not a checkpoint of the sft, grpo or dpo program", setup=write("g/checkpoint.pt", b"PK\x03\x04 cut")),
        Case("evaluate", "the vLLM backend for the kit's own model",
             lambda d: ["--out-dir", str(d / "e"), "--backend", "vllm"], "needs a Hugging Face model",
             leaves_no=("e",)),
        Case("grpo", "a difficulty filter on a task without worked solutions",
             lambda d: ["--out-dir", str(d / "g"), "--max-calculations", "2"],
             "max_calculations=2: only GSM8K's solutions have calculator steps", leaves_no=("g",)),
        Case("dpo", "a beta of 0", lambda d: ["--out-dir", str(d / "p"), "--beta", "0"], "beta=0.0 must be > 0",
             leaves_no=("p",)),
        Case("evaluate", "a rollout cache the kit's backend does not have",
             lambda d: ["--out-dir", str(d / "e"), "--rollout-cache", "static"],
             "--rollout-cache static is the transformers backend's", leaves_no=("e",)),
        Case("evaluate", "a GPU this machine does not have", lambda d: ["--out-dir", str(d / "e"), "--device", "cuda:99"],
             "cuda:99", leaves_no=("e",)),
        # fit-scaling-laws: the runs and every flag checked before any fit
        Case("fit-scaling-laws", "--runs missing", lambda d: scaling(d, "nope.json"), "--runs", leaves_no=("s",)),
        Case("fit-scaling-laws", "--runs not JSON", lambda d: scaling(d, "r.json"), "is not JSON",
             setup=write("r.json", "parameters,compute_budget,final_loss\n1e8,1e19,4.0\n"), leaves_no=("s",)),
        Case("fit-scaling-laws", "--runs an object, not an array", lambda d: scaling(d, "r.json"),
             "must hold a JSON array of objects", setup=write("r.json", '{"runs": []}'), leaves_no=("s",)),
        Case("fit-scaling-laws", "a run without final_loss", lambda d: scaling(d, "r.json"),
             "run 1 has no 'final_loss'", setup=runs_file([RUN, {"parameters": 2e8, "compute_budget": 1e19}]),
             leaves_no=("s",)),
        Case("fit-scaling-laws", "a negative loss", lambda d: scaling(d, "r.json"), "run 1 has final_loss=-4.0",
             setup=runs_file([RUN, RUN | {"final_loss": -4.0}]), leaves_no=("s",)),
        Case("fit-scaling-laws", "one compute budget", lambda d: scaling(d, "r.json"), "at least two compute budgets",
             setup=runs_file([RUN, RUN | {"parameters": 2e8}]), leaves_no=("s",)),
        Case("fit-scaling-laws", "a parabola through two runs", lambda d: scaling(d, "r.json", "--method", "parabola"),
             "fewer than 3 distinct sizes", setup=runs_file([RUN, RUN | {"parameters": 2e8},
                                                             RUN | {"compute_budget": 1e20}]), leaves_no=("s",)),
        Case("fit-scaling-laws", "losses rising with N at every budget: no compute-optimal size",
             lambda d: scaling(d, "r.json", "--samples", "10", "--loss-law-samples", "2"),
             "approach 3: the runs' loss law has α or β <= 0 (α = -0.0695", leaves_no=("s",),
             setup=runs_file([{"parameters": n, "compute_budget": c, "final_loss": loss} for c, losses in
                              ((1e18, (3.0, 3.5, 4.0)), (1e19, (2.9, 3.4, 3.9))) for n, loss in
                              zip((1e6, 1e7, 1e8), losses)])),
        Case("fit-scaling-laws", "--level 95", lambda d: scaling(d, None, "--level", "95"),
             "argument --level: must lie strictly between 0 and 1", exit_code=2, leaves_no=("s",)),
        Case("fit-scaling-laws", "--targets 0", lambda d: scaling(d, None, "--targets", "0"),
             "argument --targets: must be a positive number", exit_code=2, leaves_no=("s",)),
        Case("fit-scaling-laws", "--loss-law-samples -1", lambda d: scaling(d, None, "--loss-law-samples", "-1"),
             "argument --loss-law-samples: must be >= 0", exit_code=2, leaves_no=("s",)),
        Case("fit-scaling-laws", "an existing file as --out", lambda d: [*scaling(d, None)[:-2], "--out", str(d / "f")],
             "exists and is not a directory", setup=write("f", "keep me")),
        # training-api: the flags, the devices, the keys and the data checked before it serves
        Case("training-api", "a port out of range", lambda d: api_server(d, "--key", "k", "--port", "70000"),
             "--port 70000 is not a port number", leaves_no=("s",)),
        Case("training-api", "a key with a space", lambda d: api_server(d, "--key", "a b"),
             "argument --key: the key must be", exit_code=2, leaves_no=("s",)),
        Case("training-api", "a negative budget", lambda d: api_server(d, "--key", "k=-5"),
             "argument --key: must be a finite number of seconds >= 0, got -5", exit_code=2, leaves_no=("s",)),
        Case("training-api", "a GPU this machine does not have",
             lambda d: api_server(d, "--key", "k", "--devices", "cuda:99"), "CUDA GPU", leaves_no=("s",)),
        Case("training-api", "no API key", lambda d: api_server(d), "no API key: give --key"),
        Case("training-api", "--data-dir without token arrays",
             lambda d: api_server(d, "--key", "k", "--data-dir", str(d / "nodata")),
             "no train.npy and valid.npy with their .json"),
        # training-api-client: the key and the file checked before any request
        Case("training-api-client", "no API key", lambda d: ["--api-key", "", "budget"],
             "no API key: pass --api-key or set TRAINING_API_KEY"),
        Case("training-api-client", "a configuration that is not JSON",
             lambda d: ["--api-key", "k", "submit", str(d / "c.json")], "c.json is not a JSON training configuration",
             setup=write("c.json", "hidden_size = 64\n")),
        Case("training-api-client", "no server there",
             lambda d: ["--url", "http://127.0.0.1:9", "--api-key", "k", "budget"],
             "cannot reach http://127.0.0.1:9"),
        Case("training-api-client", "an unknown command", lambda d: ["launch"], "invalid choice: 'launch'",
             exit_code=2),
    ]


def api_server(case_dir: Path, *flags: str) -> list[str]:
    """training-api's arguments: state in ``s``, any free port, the CPU."""
    return ["--dir", str(case_dir / "s"), "--port", "0", "--devices", "cpu", *flags]


RUN = {"parameters": 1e8, "compute_budget": 1e19, "final_loss": 4.0}


def scaling(case_dir: Path, runs: str | None, *flags: str) -> list[str]:
    """fit-scaling-laws' arguments: ``runs`` in the case directory (None: the handout's runs), out to ``s``."""
    given = ["--runs", str(case_dir / runs)] if runs else []
    return [*given, *flags, "--out", str(case_dir / "s")]


def runs_file(runs: list[dict]) -> Callable[[Path], None]:
    return write("r.json", json.dumps(runs))


def labelled_documents(counts: dict[str, int]) -> Callable[[Path], None]:
    """``data/<task>/<label>/`` with the given number of one-line documents."""
    def make(case_dir: Path) -> None:
        for directory, count in counts.items():
            for i in range(count):
                write(f"data/{directory}/doc{i}.txt", f"document {i} of {directory}\n")(case_dir)
    return make


def run_case(case: Case, case_dir: Path) -> tuple[int, str]:
    """(exit code, stderr without progress-bar lines) of the case's program, called in this process."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if case.setup is not None:
            case.setup(case_dir)
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = PROGRAMS[case.program](case.argv(case_dir))
    return code, "\n".join(error_lines(err.getvalue()))


def error_lines(stderr: str) -> list[str]:
    """stderr without progress bars: tqdm redraws a bar with "\r", so a bar's line holds one."""
    return [line for line in stderr.split("\n") if line.strip() and "\r" not in line]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        world.mkdir()
        make_world(world)
        print("| program | mistake | exit | what it prints (one line) |\n| --- | --- | --- | --- |")
        for i, case in enumerate(cases(world)):
            case_dir = Path(tmp) / f"case{i}"
            case_dir.mkdir()
            code, err = run_case(case, case_dir)
            print(f"| {case.program} | {case.mistake} | {code} | `{err.replace('|', '/')}` |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
