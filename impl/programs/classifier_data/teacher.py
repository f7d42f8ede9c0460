"""alt-profanity-check's classifier, read from its wheel and run with numpy: the silver labels' teacher.

The package (MIT) holds a TF-IDF vectorizer and five sigmoid-calibrated linear SVMs trained on ~200k human labels
(Jigsaw toxic comments, Davidson et al.'s tweets). It pins scikit-learn exactly; its joblib files are read here with
scikit-learn's classes replaced by plain attribute holders, and its arithmetic is written out below, so that the kit
never needs that scikit-learn. What it computes equals the package's ``predict_prob``: unigram counts of lower-cased
``\\w\\w+`` tokens times the idf, L2-normalised; each SVM's decision value through its sigmoid; the mean.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

TOKEN = re.compile(r"(?u)\b\w\w+\b")  # the vectorizer's token_pattern


class _Attributes:
    """What an unpickled scikit-learn object becomes: its attributes and nothing else."""


def load_joblib(path: Path):
    from joblib.numpy_pickle import NumpyUnpickler  # joblib's own reader: numpy arrays follow the pickle inline

    class Unpickler(NumpyUnpickler):
        def find_class(self, module: str, name: str):
            if module.split(".")[0] == "sklearn":
                return type(name, (_Attributes,), {"__module__": module})
            return super().find_class(module, name)

    with open(path, "rb") as file:
        return Unpickler(str(path), file, ensure_native_byte_order=True).load()


class Teacher:
    """``scores(texts)``: the probability that each text is offensive, as alt-profanity-check gives it."""

    def __init__(self, package_root: Path):
        data = package_root / "profanity_check" / "data"
        vectorizer, model = load_joblib(data / "vectorizer.joblib"), load_joblib(data / "model.joblib")
        if vectorizer.ngram_range != (1, 1) or vectorizer.norm != "l2" or vectorizer.sublinear_tf:
            raise ValueError("alt-profanity-check's vectorizer is not the unigram, L2 TF-IDF this reader computes")
        self.index: dict[str, int] = vectorizer.vocabulary_
        self.idf = np.asarray(vectorizer._tfidf.idf_)  # (vocabulary,)
        members = model.calibrated_classifiers_
        self.coef = np.stack([m.estimator.coef_[0] for m in members])  # (5, vocabulary)
        self.intercept = np.array([m.estimator.intercept_[0] for m in members])  # (5,)
        self.sigmoid = np.array([[m.calibrators[0].a_, m.calibrators[0].b_] for m in members])  # (5, 2)

    def score(self, text: str) -> float:
        ids = [self.index[token] for token in TOKEN.findall(text.lower()) if token in self.index]
        features, counts = np.unique(np.array(ids, dtype=np.int64), return_counts=True)
        weights = counts * self.idf[features]
        if len(weights):
            weights = weights / np.linalg.norm(weights)
        decision = self.coef[:, features] @ weights + self.intercept  # (5,)
        return float(np.mean(1.0 / (1.0 + np.exp(self.sigmoid[:, 0] * decision + self.sigmoid[:, 1]))))

    def scores(self, texts: list[str]) -> np.ndarray:
        return np.array([self.score(text) for text in texts])
