"""The embedded end-to-end run, shortened to about a minute: tokenizer, token arrays, LM, sample;
then the ``generate`` program on its checkpoint."""

import json
import math

import numpy as np
import pytest

from impl.programs import generate
from impl.programs.embedded_run import PROMPT, main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("embedded")
    # No wall-clock limit: on a loaded machine the config's 9.5 minutes would stop it early.
    assert main(["--out-dir", str(out), "--max-steps", "60", "--max-minutes", "0"]) == 0
    return out


@pytest.mark.e2e
def test_the_embedded_run_learns_the_prose(run):
    """60 steps on the CPU take the validation loss from ln(10000) to below the unigram entropy."""
    summary = json.loads((run / "lm" / "summary.json").read_text())
    rows = [json.loads(line) for line in (run / "lm" / "metrics.jsonl").read_text().splitlines()]
    assert abs(rows[0]["train_loss"] - math.log(10_000)) < 1.0  # an untrained model is near-uniform
    assert summary["step"] == 60 and summary["val_loss"] < summary["val_unigram_entropy"] < rows[0]["train_loss"]
    assert np.load(run / "prose_valid.npy", mmap_mode="r").dtype == np.uint16
    assert (run / "sample.txt").read_text().startswith(PROMPT)
    assert (run / "lm" / "loss.png").is_file()


@pytest.mark.e2e
def test_generate_is_seeded_and_greedy_at_temperature_zero(run, capsys):
    argv = ["--run", str(run / "lm"), "--prompt", "And it came to pass", "--max-new-tokens", "20"]
    outputs = []
    for extra in (["--temperature", "0"], ["--temperature", "0", "--seed", "7"], ["--seed", "1"], ["--seed", "1"]):
        assert generate.main(argv + extra) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]  # greedy: the seed does not matter
    assert outputs[2] == outputs[3]  # sampled: the same seed, the same text
    assert all(text.startswith("And it came to pass") for text in outputs)


@pytest.mark.e2e
def test_generate_refuses_a_prompt_longer_than_the_context(run, capsys):
    assert generate.main(["--run", str(run / "lm"), "--prompt", "word " * 400]) == 1
    assert "longer than the model's context_length=128" in capsys.readouterr().err


def test_generate_names_a_missing_checkpoint(tmp_path, capsys):
    assert generate.main(["--run", str(tmp_path)]) == 1
    assert "checkpoint.pt does not exist" in capsys.readouterr().err
