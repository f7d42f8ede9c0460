"""train-classifier end to end on a tiny labelled dataset made offline (``--data``): the model and its report are
written, the run is repeatable to the byte, and the model serves the spec's functions through the environment
variable (impl/data/classifiers.py). Its bad inputs are in tests/programs/bad_inputs.py."""

from __future__ import annotations

import hashlib
import json
import lzma
import random

import pytest

from impl.data import classifiers
from impl.programs import train_classifier
from impl.programs.classifier_data import pages
from impl.programs.corpora import EMBEDDED, EOT


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """quality/wiki: 30 pages of the embedded prose corpus; quality/cc: 30 generated shop and form pages."""
    root = tmp_path_factory.mktemp("data")
    with lzma.open(EMBEDDED["valid"], "rt", encoding="utf-8") as file:
        chapters = [c.strip() for c in file.read().split(EOT) if len(c.split()) > 200]
    rng = random.Random(0)
    words = " ".join(chapters[:5]).split()
    for i in range(30):
        (root / "quality" / "wiki").mkdir(parents=True, exist_ok=True)
        (root / "quality" / "cc").mkdir(parents=True, exist_ok=True)
        (root / "quality" / "wiki" / f"chapter{i}.txt").write_text(" ".join(chapters[i % len(chapters)].split()[:300]))
        make = pages.shop_page if i % 2 else pages.form_page
        (root / "quality" / "cc" / f"page{i}.txt").write_text(make(rng, words))
    return root


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """Two runs of the program on the tiny data, into two directories."""
    outs = [tmp_path_factory.mktemp(f"run{i}") for i in range(2)]
    for out in outs:
        argv = ["--task", "quality", "--data", str(tiny_data), "--epoch", "50", "--out", str(out)]
        assert train_classifier.main(argv) == 0
    return outs


def test_writes_the_model_and_its_report(trained, capsys):
    out = trained[0]
    assert sorted(p.name for p in out.iterdir()) == ["quality.ftz", "quality.json"]
    report = json.loads((out / "quality.json").read_text())
    assert report["labels"] == ["wiki", "cc"]
    assert report["model"]["sha256"] == hashlib.sha256((out / "quality.ftz").read_bytes()).hexdigest()
    assert report["data"]["training"]["wiki"] + report["data"]["held_out"]["wiki"] == 30
    assert report["command"].startswith("train-classifier --task quality --out ")
    for model in ("full", "quantized"):  # too few documents for figures worth asserting: that they are there
        assert 0 <= report[model]["held_out"]["accuracy"] <= 1 and report[model]["held_out"]["n"] > 0


def test_the_same_data_give_the_same_model(trained):
    """One thread and fixed seeds: two runs write the same bytes."""
    assert (trained[0] / "quality.ftz").read_bytes() == (trained[1] / "quality.ftz").read_bytes()


def test_the_model_serves_classify_quality(trained, monkeypatch):
    """CS336_QUALITY_MODEL names the model that classify_quality asks."""
    path = trained[0] / "quality.ftz"
    monkeypatch.setenv("CS336_QUALITY_MODEL", str(path))
    assert classifiers.active_classifier("quality").model.path == path
    label, score = classifiers.classify_quality("Home | Shop | Cart (0)\nBuy cheap earbuds $9.99\nAdd to cart")
    assert label in ("wiki", "cc") and type(score) is float and 0.5 <= score <= 1


def test_a_model_with_other_labels_needs_a_mapping(trained):
    """A two-label model is read as another task's only with its labels mapped."""
    path = trained[0] / "quality.ftz"
    with pytest.raises(ValueError, match="labels"):
        classifiers.Classifier("nsfw", path)
    mapped = classifiers.Classifier("nsfw", path, labels={"wiki": "non-nsfw", "cc": "nsfw"})
    assert mapped.predict("Sign in\nPassword\nForgot your password?")[0] in ("nsfw", "non-nsfw")
