"""The document filters of ``filter-web-data`` (A4 §2.3-§2.7), applied in the config's order, and the counts.

Each filter keeps a document, drops it under a reason (the filter's id; ``gopher:<rule>`` for the first Gopher
rule it breaks), or changes it (``mask_pii`` masks and never drops). ``Tally`` is the accounting of one task,
merged across tasks in a fixed order so that the summary is the same however the work was split:

    documents in = kept + dropped (by reason) + failed (by reason)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from impl.programs.web_config import Filter

MASK_KINDS = ("emails", "phones", "ips")


@dataclass
class Tally:
    documents: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    other_records: dict[str, int] = field(default_factory=dict)
    damaged_files: list[dict] = field(default_factory=list)
    masks: dict[str, int] = field(default_factory=dict)  # masks per kind, and "documents" masked
    gopher_rules: dict[str, int] = field(default_factory=dict)  # every rule broken (a document may break several)
    examples: dict[str, list[dict]] = field(default_factory=dict)  # reason -> the first few documents
    max_examples: int = 3

    def count(self, kind: str, reason: str, example: dict) -> None:
        """A document dropped or failed ("dropped" / "failed") under ``reason``."""
        counts = getattr(self, kind)
        counts[reason] = counts.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples:
            shown.append(example)

    def add(self, counts: dict, key: str, n: int = 1) -> None:
        counts[key] = counts.get(key, 0) + n

    def merge(self, other: Tally) -> None:
        self.documents += other.documents
        self.kept += other.kept
        for name in ("dropped", "failed", "other_records", "masks", "gopher_rules"):
            for key, n in getattr(other, name).items():
                self.add(getattr(self, name), key, n)
        self.damaged_files += other.damaged_files
        for reason, shown in other.examples.items():
            mine = self.examples.setdefault(reason, [])
            mine += shown[: max(0, self.max_examples - len(mine))]

    def to_dict(self) -> dict:
        return {"documents": self.documents, "kept": self.kept, "dropped": dict(sorted(self.dropped.items())),
                "failed": dict(sorted(self.failed.items())), "other_records": dict(sorted(self.other_records.items())),
                "damaged_files": self.damaged_files, "masks": self.masks, "gopher_rules": self.gopher_rules,
                "examples": dict(sorted(self.examples.items()))}

    @classmethod
    def from_dict(cls, data: dict, max_examples: int = 3) -> Tally:
        return cls(**data, max_examples=max_examples)


def snippet(text: str, chars: int) -> str:
    """The start of ``text`` on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= chars else flat[: chars - 1] + "…"


@functools.cache
def fasttext_model(path: str):
    from impl.data.fasttext_model import model_at

    return model_at(Path(path))


class DocumentFilters:
    """The config's document filters after ``extract``: ``apply(doc, tally)`` gives None (kept, text maybe
    changed) or why it is dropped: (reason, detail). ``models`` maps each fastText filter's id to its model file."""

    def __init__(self, filters: tuple[Filter, ...], models: dict[str, str]):
        self.filters = [f for f in filters if f.name in ("language", "gopher", "mask_pii", "classifier")]
        self.models = models

    def apply(self, doc: dict, tally: Tally) -> tuple[str, str] | None:
        for f in self.filters:
            dropped = getattr(self, f.name)(f, doc, tally)
            if dropped:
                return dropped
        return None

    def language(self, f: Filter, doc: dict, tally: Tally) -> tuple[str, str] | None:
        label, score = fasttext_model(self.models[f.id]).predict(doc["text"])
        doc["language"], doc["language_score"] = label, round(score, 4)
        if label not in f.options["languages"] or score < f.options["min_score"]:
            return f.id, f"{label} {score:.2f}"
        return None

    def gopher(self, f: Filter, doc: dict, tally: Tally) -> tuple[str, str] | None:
        from impl.data.gopher import gopher_rule_failures

        broken = [rule for rule in gopher_rule_failures(doc["text"]) if rule in f.options["rules"]]
        for rule in broken:
            tally.add(tally.gopher_rules, rule)
        return (f"{f.id}:{broken[0]}", " ".join(broken)) if broken else None

    def mask_pii(self, f: Filter, doc: dict, tally: Tally) -> None:
        from impl.data.pii import mask_emails, mask_ips, mask_phone_numbers

        total = 0
        for kind, mask in zip(MASK_KINDS, (mask_emails, mask_phone_numbers, mask_ips)):
            if f.options[kind]:
                doc["text"], n = mask(doc["text"])
                tally.add(tally.masks, kind, n)
                total += n
        if total:
            tally.add(tally.masks, "documents")
            doc["pii_masks"] = total
        return None

    def classifier(self, f: Filter, doc: dict, tally: Tally) -> tuple[str, str] | None:
        label = f.options["label"]
        probability = fasttext_model(self.models[f.id]).probabilities(doc["text"]).get(label, 0.0)
        doc.setdefault("scores", {})[f.id] = round(probability, 4)
        over = probability >= f.options["threshold"]
        return (f.id, f"P({label}) {probability:.2f}") if over == (f.options["action"] == "drop") else None
