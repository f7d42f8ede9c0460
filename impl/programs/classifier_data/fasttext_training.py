"""Training, quantizing and evaluating a fastText classifier, each model in a fresh process.

fasttext-numpy2 0.10.4 can fail with "Encountered NaN" when a second model is trained in the same process (never in
a fresh one), so every training runs in a process of its own (multiprocessing "spawn"). One thread and a fixed seed
make a run repeatable. The texts are written and read exactly as ``impl.data.classifiers`` reads them at prediction
time (``one_line``), so that the figures are those of the shipped function.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from impl.data.fasttext_model import LABEL_PREFIX, one_line
from impl.programs.classifier_data.datasets import Example


@dataclass(frozen=True)
class Hyperparameters:
    epoch: int
    dim: int = 32  # 64 is no better on these data, and the model is half the size
    lr: float = 0.2
    wordNgrams: int = 2
    minn: int = 2  # character n-grams of 2-5: spelling variants (f*ck, fuuuck) share features
    maxn: int = 5
    bucket: int = 100_000
    loss: str = "softmax"
    thread: int = 1
    seed: int = 0


@dataclass(frozen=True)
class Quantization:
    cutoff: int = 100_000  # words and n-grams kept: the .ftz is ~2.6 MB instead of ~25 MB for the .bin
    qnorm: bool = False
    retrain: bool = True
    dsub: int = 2


def write_training_file(path: Path, examples: list[Example], oversample: dict[str, int] | None = None,
                        seed: int = 0) -> None:
    """fastText's format, ``__label__<label> <text>`` a line, shuffled (fastText reads in order and would otherwise
    see one class at a time); a label in ``oversample`` is written that many times."""
    lines = [f"{LABEL_PREFIX}{e.label} {one_line(e.text)}\n" for e in examples
             for _ in range((oversample or {}).get(e.label, 1))]
    random.Random(seed).shuffle(lines)
    path.write_text("".join(lines), encoding="utf-8")


def _train(training_file: str, model_file: str, quantized_file: str | None, hyperparameters: dict,
           quantization: dict) -> dict[str, float]:
    """In the child process: train, save, quantize and save; the seconds each took."""
    import fasttext

    start = time.perf_counter()
    # verbose=2: fastText's own progress line on stderr (percent done, words/s, loss, ETA); the model is the same.
    model = fasttext.train_supervised(training_file, **hyperparameters, verbose=2)
    model.save_model(model_file)
    seconds = {"train_s": time.perf_counter() - start}
    if quantized_file:
        start = time.perf_counter()
        model.quantize(input=training_file, thread=hyperparameters["thread"], verbose=0, **quantization)
        model.save_model(quantized_file)
        seconds["quantize_s"] = time.perf_counter() - start
    return seconds


def train(training_file: Path, model_file: Path, quantized_file: Path | None, hyperparameters: Hyperparameters,
          quantization: Quantization = Quantization()) -> dict[str, float]:
    """Train in a fresh process; write the full model to ``model_file`` and, if given, the quantized one."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_train, str(training_file), str(model_file), str(quantized_file) if quantized_file else None,
                           asdict(hyperparameters), asdict(quantization)).result()


def probabilities(model, texts: list[str], label: str) -> np.ndarray:
    """The model's probability of ``label`` for each text (a fastText model object), clipped to [0, 1]."""
    labels, scores = model.predict([one_line(t) for t in texts], k=-1)
    return np.array([min(1.0, dict(zip(ls, ps)).get(LABEL_PREFIX + label, 0.0)) for ls, ps in zip(labels, scores)])


def precision_recall(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float | int | None]:
    """Precision, recall and accuracy of boolean predictions of the positive class (None where undefined)."""
    truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
    true_positive = int((truth & predicted).sum())
    precision = true_positive / predicted.sum() if predicted.sum() else None
    recall = true_positive / truth.sum() if truth.sum() else None
    accuracy = float((truth == predicted).mean()) if len(truth) else None
    return {"n": len(truth), "positive": int(truth.sum()), "precision": _round(precision), "recall": _round(recall),
            "accuracy": _round(accuracy)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def file_size_mb(path: Path) -> float:
    return round(os.path.getsize(path) / 1e6, 2)
