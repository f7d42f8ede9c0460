"""The CS336 contract: one Protocol (or function signature) per component, one module per area.

An implementation is any object whose attributes carry the component names below: a module
(``import mypkg`` with ``mypkg.Linear``, ``mypkg.softmax`` ...) or an ``Implementation``
bundle. Every member is optional; a member that is absent is reported *missing* and fails
only its own tests.

The areas: ``tokenizer`` (byte-level BPE, A1 §2), ``nn`` (the Transformer LM, A1 §3), ``train``
(loss, AdamW, schedule, clipping, batches, checkpoints, A1 §4–§5), ``decode`` (temperature and
top-p sampling, the generation loop, A1 §6), ``kernels`` (Triton kernels with their autograd, A2 §4) and
``distributed`` (DDP, optimizer-state sharding, FSDP in a process group of several ranks, A2 §5–§7), ``data``
(web-data filtering: text extraction, language ID, PII masking, quality rules, deduplication, A4 §2–§3) and
``alignment`` (SFT and GRPO helpers, the r1_zero reward, MMLU / GSM8K parsing, packed SFT data, DPO, A5) and ``scaling``
(IsoFLOP minima, power-law and loss-law fits, bootstrap intervals, A3).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

# The areas in the report's order; each is the module spec/<area>.py. Adding an area: that module and its name here.
AREAS = ("tokenizer", "nn", "train", "decode", "kernels", "distributed", "data", "alignment", "scaling")

# Component name -> area, from each area module's ``__all__``.
COMPONENTS: dict[str, str] = {name: area for area in AREAS
                              for name in importlib.import_module(f"spec.{area}").__all__}


def area_modules(package: str) -> list[ModuleType]:
    """``<package>.<area>`` for every area that has a module in ``package``, imported, in the areas' order.

    The packages that keep one module per area (spec.adapters, fixtures.cases, tests.kit.mutants) assemble
    themselves with this, so that a new area adds its module and edits no shared list.
    """
    names = [f"{package}.{area}" for area in AREAS]
    return [importlib.import_module(name) for name in names if importlib.util.find_spec(name) is not None]


class ComponentMissing(Exception):
    """The implementation under test does not provide this component (or this feature of it)."""

    def __init__(self, component: str, detail: str = ""):
        self.component = component
        super().__init__(f"{component} is missing" + (f": {detail}" if detail else ""))


@dataclass
class Implementation:
    """An explicit bundle: ``Implementation(name="mine", members={"Linear": MyLinear, ...})``."""

    name: str
    version: str = "unknown"
    members: dict[str, Any] = field(default_factory=dict)
    # One pytest node-id glob per line (``# reason`` comments allowed): known gaps.
    expected_failures: Path | None = None

    def __post_init__(self):
        unknown = set(self.members) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown component names {sorted(unknown)}; the spec names are {list(COMPONENTS)}")

    def __getattr__(self, member: str) -> Any:
        try:
            return self.__dict__["members"][member]
        except KeyError:
            raise AttributeError(member) from None
