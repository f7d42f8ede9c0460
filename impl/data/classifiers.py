"""The harmful-content and quality classifiers (A4 §2.5, §2.7): two-label fastText models.

Each function asks a fastText model for the top label of the text (newlines replaced by spaces, as the course's
solutions do) and returns the spec's name for it with its probability. The model is, in this order:

1. the file named by the task's environment variable (``CS336_NSFW_MODEL``, ``CS336_TOXIC_MODEL``,
   ``CS336_QUALITY_MODEL``): point them at the handout's Dolma Jigsaw models
   (``jigsaw_fasttext_bigrams_nsfw_final.bin``, ``..._hatespeech_final.bin``) or at your own quality model, and these
   functions behave as the course's do;
2. the kit's own model, shipped in impl/data/models/ and built by ``train-classifier`` from registry packages (its
   model card, impl/data/models/README.md, gives its data, its figures and its limits: the toxic one is weak).

A model's two labels are mapped to the spec's: Dolma's ``nsfw`` / ``non-nsfw`` and ``toxic`` / ``non-toxic`` are
the spec's already; the common names of a home-made quality model's classes (``hq`` / ``lq``, ``high`` / ``low``,
``positive`` / ``negative``, ``1`` / ``0`` ...) are known; any other pair is given with ``labels=`` to
``load_classifier``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from impl.data.fasttext_model import FastTextModel

MODELS_DIR = Path(__file__).with_name("models")


@dataclass(frozen=True)
class Task:
    name: str  # "nsfw", "toxic", "quality": also the shipped model's file name
    positive: str  # the spec's label of what a filter looks for
    negative: str
    environment: str  # the variable naming a model file to use instead of the kit's
    synonyms: dict[str, str] = field(default_factory=dict)  # other models' labels -> the spec's

    @property
    def labels(self) -> tuple[str, str]:
        return self.positive, self.negative


_HIGH = ("hq", "high", "high_quality", "high-quality", "good", "positive", "pos", "1", "wikipedia", "wiki_ref")
_LOW = ("lq", "low", "low_quality", "low-quality", "bad", "negative", "neg", "0", "commoncrawl", "common_crawl")
TASKS = {
    "nsfw": Task("nsfw", "nsfw", "non-nsfw", "CS336_NSFW_MODEL", {"non_nsfw": "non-nsfw", "sfw": "non-nsfw"}),
    "toxic": Task("toxic", "toxic", "non-toxic", "CS336_TOXIC_MODEL", {"non_toxic": "non-toxic"}),
    "quality": Task("quality", "wiki", "cc", "CS336_QUALITY_MODEL",
                    {**dict.fromkeys(_HIGH, "wiki"), **dict.fromkeys(_LOW, "cc")}),
}


class Classifier:
    """A two-label fastText model read as one task's classifier: ``predict(text)`` -> (the spec's label, its
    probability). ``labels`` maps the model's labels (without ``__label__``) to the spec's."""

    def __init__(self, task: str, path: str | Path, labels: dict[str, str] | None = None):
        self.task = TASKS[task]
        self.model = FastTextModel(path)
        self.labels = {label: (labels or {}).get(label, self.task.synonyms.get(label.lower(), label))
                       for label in self.model.labels}
        if sorted(self.labels.values()) != sorted(self.task.labels):
            raise ValueError(f"{path}: its labels {self.model.labels} are not {self.task.name}'s two classes "
                             f"{list(self.task.labels)}; give labels={{model label: spec label}}")

    def predict(self, text: str) -> tuple[str, float]:
        label, probability = self.model.predict(text)
        return self.labels[label], probability


def default_model(task: str) -> Path:
    """The kit's shipped model for ``task``."""
    return MODELS_DIR / f"{task}.ftz"


@functools.cache
def load_classifier(task: str, path: str | Path | None = None, labels: tuple[tuple[str, str], ...] | None = None
                    ) -> Classifier:
    """The classifier of ``task`` from the model at ``path`` (default: the kit's), loaded once per process;
    ``labels``: the model's labels mapped to the spec's, as pairs (a dict is not hashable)."""
    return Classifier(task, path or default_model(task), dict(labels) if labels else None)


def active_classifier(task: str) -> Classifier:
    """The model the task's environment variable names, or the kit's."""
    return load_classifier(task, os.environ.get(TASKS[task].environment) or None)


def classify_nsfw(text: str) -> tuple[str, float]:
    """"nsfw" or "non-nsfw" and the probability of that label."""
    return active_classifier("nsfw").predict(text)


def classify_toxic_speech(text: str) -> tuple[str, float]:
    """"toxic" or "non-toxic" and the probability of that label."""
    return active_classifier("toxic").predict(text)


def classify_quality(text: str) -> tuple[str, float]:
    """"wiki" (high quality) or "cc" (low quality) and the probability of that label."""
    return active_classifier("quality").predict(text)
