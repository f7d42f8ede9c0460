"""The CS336 contract: one Protocol (or function signature) per component, one module per area.

An implementation is any object whose attributes carry the component names below: a module
(``import mypkg`` with ``mypkg.Linear``, ``mypkg.softmax`` ...) or an ``Implementation``
bundle. Every member is optional; a member that is absent is reported *missing* and fails
only its own tests.

The areas: ``tokenizer`` (byte-level BPE, A1 §2), ``nn`` (the Transformer LM, A1 §3), ``train``
(loss, AdamW, schedule, clipping, batches, checkpoints, A1 §4–§5), ``decode`` (temperature and
top-p sampling, the generation loop, A1 §6), ``kernels`` (Triton kernels with their autograd, A2 §4) and
``distributed`` (DDP, optimizer-state sharding, FSDP in a process group of several ranks, A2 §5–§7).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

# Component name -> area (the spec module that pins it). The order is the report's order.
COMPONENTS: dict[str, str] = {
    "train_bpe": "tokenizer",
    "Tokenizer": "tokenizer",
    "Linear": "nn",
    "Embedding": "nn",
    "RMSNorm": "nn",
    "silu": "nn",
    "SwiGLU": "nn",
    "RotaryEmbedding": "nn",
    "softmax": "nn",
    "scaled_dot_product_attention": "nn",
    "MultiHeadSelfAttention": "nn",
    "TransformerBlock": "nn",
    "TransformerLM": "nn",
    "cross_entropy": "train",
    "AdamW": "train",
    "lr_cosine_schedule": "train",
    "clip_gradients": "train",
    "get_batch": "train",
    "save_checkpoint": "train",
    "load_checkpoint": "train",
    "sample_next_token": "decode",
    "decode": "decode",
    "RMSNormTriton": "kernels",
    "FlashAttentionPyTorch": "kernels",
    "FlashAttentionTriton": "kernels",
    "flash_attention": "kernels",
    "DDPIndividualParameters": "distributed",
    "DDPBucketed": "distributed",
    "ShardedOptimizer": "distributed",
    "FSDP": "distributed",
}
# The areas, in the same order: the second-level name of every folder and module that holds one area's part.
AREAS: tuple[str, ...] = tuple(dict.fromkeys(COMPONENTS.values()))


def area_modules(package: str) -> list[ModuleType]:
    """``<package>.<area>`` for every area that has a module in ``package``, imported, in the areas' order.

    The packages that keep one module per area (spec.adapters, fixtures.cases, tests.kit.mutants) assemble
    themselves with this, so that a new area adds its module and edits no shared list.
    """
    names = [f"{package}.{area}" for area in AREAS]
    return [importlib.import_module(name) for name in names if importlib.util.find_spec(name) is not None]


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
