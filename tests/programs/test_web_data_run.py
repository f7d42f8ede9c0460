"""web-data-run shortened to seconds (a small crawl, a tiny model, 20 steps): every output is there and agrees with
the others; the two runs saw the same number of tokens; mistakes are one line before any work."""

import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from fixtures.web.crawls import prose_documents
from impl.programs.checkpoints import load_run_checkpoint
from impl.programs.corpora import EMBEDDED
from impl.programs.web_crawl import KINDS
from impl.programs.web_data_run import STREAMS, main
from tests.harness.helpers import REPO

TINY = """context_length = 64
d_model = 64
num_layers = 2
num_heads = 4
d_ff = 176
batch_size = 8
max_steps = 200
warmup_steps = 5
lr_max = 3e-3
log_interval = 5
eval_interval = 10
eval_batches = 4
checkpoint_interval = 100
"""
JUNK = ("debian_other", "stub", "listing", "archive")  # what the default pipeline removes, every page of it


def short_run(root) -> list[str]:
    """The arguments of the shortened run into ``root / "out"``."""
    (root / "tiny.toml").write_text(TINY)
    return ["--out-dir", str(root / "out"), "--config", str(root / "tiny.toml"), "--max-steps", "20",
            "--clean-pages", "60"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-data-run")
    assert main(short_run(root)) == 0
    return root / "out"


@pytest.mark.e2e
def test_both_runs_saw_the_same_tokens_and_the_outputs_agree(run):
    summary = json.loads((run / "summary.json").read_text())
    crawl = json.loads((run / "crawl" / "crawl.json").read_text())
    filtered, unfiltered = summary["streams"]["filtered"], summary["streams"]["unfiltered"]
    for stream in (filtered, unfiltered):
        assert stream["steps"] == 20 and stream["tokens_seen"] == 20 * 8 * 64
        assert math.isfinite(stream["held_out_loss"]) and stream["held_out_loss"] < math.log(4096) + 1
        assert stream["epochs"] == pytest.approx(stream["tokens_seen"] / stream["tokens"])
        assert sum(k["tokens"] for k in stream["by_kind"].values()) == stream["tokens"]
    assert summary["held_out_loss_gap"] == pytest.approx(unfiltered["held_out_loss"] - filtered["held_out_loss"])
    equal = summary["filtered_val_at_equal_clean_tokens"]
    assert 0 < equal["tokens_seen"] and math.isfinite(equal["filtered_val_loss"])
    # The token arrays are the streams the summary describes.
    assert len(np.load(run / "filtered" / "tokens.npy", mmap_mode="r")) == filtered["tokens"]
    assert len(np.load(run / "unfiltered" / "tokens.npy", mmap_mode="r")) == unfiltered["tokens"]
    assert json.loads((run / "filtered" / "summary.json").read_text())["tokens"] == filtered["tokens"]
    # Unfiltered: every page of the crawl, as many of each kind as the crawl holds; filtered: none of the junk.
    assert {k: v["documents"] for k, v in unfiltered["by_kind"].items()} == crawl["pages"]
    assert unfiltered["records_without_text"] == 0
    assert all(filtered["by_kind"][kind]["documents"] == 0 for kind in JUNK)
    assert filtered["share"]["clean_all"] > unfiltered["share"]["clean_all"]
    assert set(KINDS) == set(crawl["pages"]) and crawl["pages"]["clean"] == 60
    assert len(list((run / "crawl").glob("*.warc.gz"))) == crawl["plan"]["files"]
    # The same run but for its data: every setting of the two checkpoints alike except the paths.
    configs = [load_run_checkpoint(run / f"lm-{stream}" / "checkpoint.pt")["config"] for stream in STREAMS]
    assert [{k: v for k, v in c.items() if k not in ("train_data", "out_dir")} for c in configs] == [
        {k: v for k, v in configs[0].items() if k not in ("train_data", "out_dir")}] * 2
    for name in ("compare.png", "tokenizer/vocab.json", "valid.npy", "lm-filtered/checkpoint.pt",
                 "lm-unfiltered/checkpoint.pt", "unfiltered/tokens.json"):
        assert (run / name).is_file(), name


DATA_STEPS = ("crawl", "train-bpe", "filter-web-data", "unfiltered", "tokenize-valid")


@pytest.mark.e2e
def test_a_killed_run_resumes_to_the_uninterrupted_runs_streams_and_losses(run, tmp_path, capsys):
    """SIGKILL once every data step is done (as the first LM starts), then ``--resume``: the data steps are not done
    again, both LMs train; the token streams are byte for byte the uninterrupted run's, the held-out losses its."""
    argv = short_run(tmp_path)
    out = tmp_path / "out"
    killed = subprocess.Popen([sys.executable, "-m", "impl.programs.web_data_run", *argv], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (out / "steps" / "tokenize-valid.json").is_file():
        assert killed.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the data steps took more than 10 minutes"
        time.sleep(0.05)
    killed.kill()
    killed.wait(timeout=60)
    assert not (out / "summary.json").exists()
    capsys.readouterr()
    assert main(["--out-dir", str(out), "--resume", "--seed", "5"]) == 1  # a run's arguments are its own
    assert "--seed differ from its run.json" in capsys.readouterr().err
    assert main(["--out-dir", str(out), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert all(f"== {name}: done by an earlier run" in printed for name in DATA_STEPS), printed
    assert all(f"== train on the {stream} tokens" in printed for stream in STREAMS), printed
    for name in ("filtered/tokens.npy", "unfiltered/tokens.npy", "valid.npy"):
        assert (out / name).read_bytes() == (run / name).read_bytes(), name
    resumed, straight = (json.loads((d / "summary.json").read_text())["streams"] for d in (out, run))
    for stream in STREAMS:
        assert resumed[stream]["held_out_loss"] == pytest.approx(straight[stream]["held_out_loss"], rel=1e-6)


def test_resume_needs_a_run_to_continue(tmp_path, capsys):
    assert main(["--out-dir", str(tmp_path), "--resume"]) == 1
    assert f"--resume: {tmp_path} holds no web-data-run to continue" in capsys.readouterr().err


@pytest.mark.e2e
def test_the_held_out_chapters_are_not_in_the_crawl(run):
    clean = (run / "clean.txt").read_text()
    documents = "".join(p.read_text() for p in (run / "filtered" / "documents").glob("*.jsonl"))
    for chapter in prose_documents(EMBEDDED["valid"]):
        middle = " ".join(chapter.split()[len(chapter.split()) // 2:][:30])  # 30 words from its middle
        assert middle not in clean and middle not in documents


@pytest.mark.parametrize("argv, message", [
    (["--clean-pages", "5000"], "--clean-pages 5000: the prose train split has 1228 chapters"),
    (["--clean-pages", "0"], "--clean-pages: must be >= 1, got 0"),
    (["--config", "missing.toml"], "missing.toml"),
    (["--filter-config", "missing.toml"], "--filter-config missing.toml does not exist"),
    (["--max-steps", "-3"], "--max-steps: must be >= 1, got -3"),
])
def test_a_mistake_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert main(["--out-dir", str(out), *argv]) in (1, 2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("web-data-run: error:") and message in err, err
    assert not out.exists()


def test_a_non_empty_out_dir_and_a_missing_warcio_are_refused(tmp_path, capsys, monkeypatch):
    (tmp_path / "old.txt").write_text("x")
    assert main(["--out-dir", str(tmp_path)]) == 1
    assert "is not an empty directory: choose another, or add --resume" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "warcio", None)  # import warcio raises ImportError
    assert main(["--out-dir", str(tmp_path / "new")]) == 1
    assert "pip install warcio" in capsys.readouterr().err
