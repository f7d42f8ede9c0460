"""fastText models read from a file: the one loader behind language ID and the content classifiers (A4 §2.3–§2.7).

fastText classifies one line of whitespace-separated tokens and names its classes ``__label__<name>``; this wrapper
takes any text (newlines become spaces, as the course's solutions do) and returns the name without the prefix and
the probability as a Python float in [0, 1]. Both fasttext-numpy2 and fasttext-predict read the same .bin / .ftz
files.
"""

from __future__ import annotations

import functools
from pathlib import Path

LABEL_PREFIX = "__label__"


def one_line(text: str) -> str:
    """``text`` with its line breaks replaced by spaces: fastText's predict refuses a newline."""
    return " ".join(text.splitlines())


class FastTextModel:
    """A fastText classifier read from ``path``: ``predict(text)`` gives (label without ``__label__``, probability)."""

    def __init__(self, path: str | Path):
        import fasttext  # fasttext-numpy2 (or fasttext-predict: both read the same files)

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"fastText model {path} does not exist")
        self.path = path
        self.model = fasttext.load_model(str(path))

    @property
    def labels(self) -> list[str]:
        """The model's classes, without the ``__label__`` prefix, most frequent in its training data first."""
        return [label.removeprefix(LABEL_PREFIX) for label in self.model.get_labels()]

    def predict(self, text: str) -> tuple[str, float]:
        return next(iter(self.probabilities(text, k=1).items()))

    def probabilities(self, text: str, k: int = -1) -> dict[str, float]:
        """The ``k`` most probable labels (-1: all) and their probabilities, the most probable first."""
        labels, probabilities = self.model.predict(one_line(text), k=k)
        # fastText's probabilities can exceed 1 by a rounding step (it adds 1e-5 before taking the log), a quantized
        # model's by more.
        return {label.removeprefix(LABEL_PREFIX): min(1.0, max(0.0, float(p)))
                for label, p in zip(labels, probabilities)}


@functools.cache
def model_at(path: Path) -> FastTextModel:
    """The model at ``path``, loaded once per process (lid.176.ftz takes ~0.1 s to load)."""
    return FastTextModel(path)
