"""The course-adapter bridge: check a course-style ``adapters.py`` unchanged.

The course's own tests call the ``run_*`` / ``get_*`` functions of ``tests/adapters.py``
(assignment1-basics). ``--impl adapters:path/to/adapters.py`` loads such a file and wraps
it in the spec's interfaces (spec/tokenizer.py, spec/nn.py, spec/train.py):

- functions become thin wrappers with the spec's signatures (``softmax(x, dim)`` calls
  ``run_softmax(x, dim)``); ``AdamW`` is the class ``get_adamw_cls()`` returns;
- modules become ``torch.nn.Module`` classes with the spec's constructors and parameter
  names, so that ``load_state_dict`` with the spec's keys works; ``forward`` hands the
  current parameter values to the adapter (``Linear(x)`` calls ``run_linear(d_in, d_out,
  weight, x)``; ``TransformerLM`` passes its ``state_dict``-keyed weights, the course's dict).

What adapters cannot show: they take weights by value, so the student's initialization,
gradients to the module's parameters and the ablation switches (A1 §7.3) stay out of
reach. Bridged modules declare that in ``kit_unsupported``; the tests that need those
features call ``needs(...)`` and report the component *missing*, not failed.

The tokenizer (spec/tokenizer.py): ``train_bpe`` calls ``run_train_bpe``; ``Tokenizer`` is a
class whose constructor calls ``get_tokenizer(vocab, merges, special_tokens)`` and whose
``encode`` / ``decode`` / ``encode_iterable`` delegate to the object it returns.
``Tokenizer.from_files`` reads the course's files (GPT-2's vocab.json and merges.txt) with the
kit's own reader (tests/harness/gpt2_format.py), then calls ``get_tokenizer``: the course's
adapters expose no file loading of their own.

Decoding (spec/decode.py) has no course adapter: through this bridge its components are
always absent, hence missing (``NO_COURSE_ADAPTER``); nor has the multi-head ``flash_attention``.

FlashAttention-2 (spec/kernels.py, A2 §4): ``FlashAttentionPyTorch`` and ``FlashAttentionTriton`` are
the autograd Function classes that ``get_flashattention_autograd_function_pytorch()`` and
``get_flashattention_autograd_function_triton()`` return (the handout also spells the second
``get_flash_autograd_function_triton``; either is taken), used as they are, like ``get_adamw_cls``.

Distributed training (spec/distributed.py, A2 §5–§6): ``DDPIndividualParameters(module)`` and
``DDPBucketed(module, bucket_size_mb)`` wrap the object ``get_ddp_individual_parameters`` /
``get_ddp_bucketed`` returns; calling it first calls ``ddp_bucketed_on_train_batch_start`` (bucketed only)
and ``finish_gradient_synchronization()`` calls ``ddp_*_on_after_backward``; everything else (``module``,
``parameters()`` ...) is the returned object's. The spec's interface has no optimizer to hand these hooks:
they get a stand-in that reports the component missing if used. ``ShardedOptimizer(params, optimizer_cls,
**kwargs)`` is the object ``get_sharded_optimizer`` returns. Each rank's process reloads the adapters file
from the label, so these bridges are rebuilt there, never pickled.

FSDP (spec/distributed.py, A2 §7): ``FSDP(module, compute_dtype)`` wraps what ``get_fsdp`` returns;
``finish_gradient_synchronization`` calls ``fsdp_on_after_backward`` (with the stand-in optimizer) and
``full_state_dict`` calls ``fsdp_gather_full_params(model)``, each falling back to the returned object's own
method when the file lacks the function; everything else is the returned object's, as for DDP.

A function the file lacks leaves its component absent (reported missing). A function that
raises NotImplementedError, as every body of the course's stub file does, reports its
component missing when called (for the tokenizer object, when one of its methods does).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

import spec.nn
import spec.tokenizer
import spec.train
from spec import Implementation
from tests.harness.gpt2_format import read_gpt2_files
from tests.harness.loading import ComponentMissing

# Components the course's adapters.py has no function for: always missing through the bridge.
# RMSNormTriton: the 2025 course adapters have no RMSNorm getter (added here by the FlashAttention-2 helper so that
# the bridge tests pass; its owner may bridge it instead).
NO_COURSE_ADAPTER = frozenset({"sample_next_token", "decode", "flash_attention", "RMSNormTriton"})
# Components that are classes a course getter returns (A2's FlashAttention-2 autograd Functions): the getters,
# the first one the file has is used.
FUNCTION_GETTERS: dict[str, tuple[str, ...]] = {
    "FlashAttentionPyTorch": ("get_flashattention_autograd_function_pytorch",),
    "FlashAttentionTriton": ("get_flashattention_autograd_function_triton", "get_flash_autograd_function_triton"),
}
# What no adapters file lets the kit check (see the module docstring).
KIT_UNSUPPORTED = frozenset({"initialization", "autograd", "ablations"})


class Adapters:
    """A loaded adapters file. ``call`` turns a stub (absent or NotImplementedError) into ComponentMissing."""

    def __init__(self, module: ModuleType, path: Path):
        self.module, self.path = module, path
        # One subclass of each bridged module per file, bound to it; composites build their parts from these.
        self.classes: dict[str, type[BridgedModule]] = {
            base.__name__: type(base.__name__, (base,), {"adapters": self, "__module__": __name__}) for base in MODULES
        }

    def has(self, function: str) -> bool:
        return callable(getattr(self.module, function, None))

    def call(self, component: str, function: str, *args: Any, **kwargs: Any) -> Any:
        if not self.has(function):
            raise ComponentMissing(component, f"{self.path.name} has no {function}")
        try:
            return getattr(self.module, function)(*args, **kwargs)
        except NotImplementedError as error:
            raise ComponentMissing(component, f"adapters.{function} raises NotImplementedError") from error


def load_adapters(path: Path) -> Implementation:
    """Import a course-style adapters file and bundle what it provides under the spec's names."""
    adapters = Adapters(import_file(Path(path)), Path(path))
    members: dict[str, Any] = {}
    for component, (spec_function, adapter) in FUNCTIONS.items():
        if adapters.has(adapter):
            members[component] = bridge_function(adapters, component, spec_function, adapter)
    if adapters.has("run_get_batch"):
        members["get_batch"] = bridge_get_batch(adapters)
    if adapters.has("get_adamw_cls"):
        members["AdamW"] = bridge_adamw(adapters)
    for component, getters in FUNCTION_GETTERS.items():
        getter = next((name for name in getters if adapters.has(name)), None)
        if getter is not None:
            members[component] = bridge_autograd_function(adapters, component, getter)
    for component, (getter, *_) in DDP_ADAPTERS.items():
        if adapters.has(getter):
            members[component] = type(component, (DataParallel,), {"adapters": adapters, "component": component,
                                                                  "__module__": __name__})
    if adapters.has("get_sharded_optimizer"):
        members["ShardedOptimizer"] = type("ShardedOptimizer", (ShardedOptimizer,), {"adapters": adapters,
                                                                                     "__module__": __name__})
    if adapters.has("get_tokenizer"):
        members["Tokenizer"] = type("Tokenizer", (Tokenizer,), {"adapters": adapters, "__module__": __name__})
    if adapters.has("get_fsdp"):
        members["FSDP"] = type("FSDP", (FSDP,), {"adapters": adapters, "__module__": __name__})
    for name, module in adapters.classes.items():
        if any(adapters.has(function) for function in module.adapter_functions):
            members[name] = module
    return Implementation(name=f"adapters ({path})", members=members)


def import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise FileNotFoundError(f"adapters file {path} does not exist (from --impl adapters:{path})")
    # A name of its own per file, so that two adapters files can be loaded side by side.
    name = "cs336_kit_adapters_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"cannot import adapters file {path}: not a Python source file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up here
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        hint = (" (is the package it imports installed in this environment? e.g. pip install -e <your repo>)"
                if isinstance(error, ImportError) else "")
        raise ValueError(f"cannot import adapters file {path}: {type(error).__name__}: {error}{hint}") from error
    return module


# ---------------------------------------------------------------------------------------------
# Functions

# Spec function -> the adapter taking the same arguments in the same order (names may differ).
FUNCTIONS: dict[str, tuple[Callable, str]] = {
    "train_bpe": (spec.tokenizer.train_bpe, "run_train_bpe"),
    "silu": (spec.nn.silu, "run_silu"),
    "softmax": (spec.nn.softmax, "run_softmax"),
    "scaled_dot_product_attention": (spec.nn.scaled_dot_product_attention, "run_scaled_dot_product_attention"),
    "cross_entropy": (spec.train.cross_entropy, "run_cross_entropy"),
    "clip_gradients": (spec.train.clip_gradients, "run_gradient_clipping"),
    "lr_cosine_schedule": (spec.train.lr_cosine_schedule, "run_get_lr_cosine_schedule"),
    "save_checkpoint": (spec.train.save_checkpoint, "run_save_checkpoint"),
    "load_checkpoint": (spec.train.load_checkpoint, "run_load_checkpoint"),
}


def bridge_function(adapters: Adapters, component: str, spec_function: Callable, adapter: str) -> Callable:
    """A function with ``spec_function``'s signature that calls ``adapter`` positionally."""
    signature = inspect.signature(spec_function)

    def bridged(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)  # accepts the spec's keyword names
        bound.apply_defaults()
        return adapters.call(component, adapter, *bound.arguments.values())

    bridged.__name__ = bridged.__qualname__ = component
    bridged.__signature__ = signature
    bridged.__doc__ = f"``{component}`` through adapters.{adapter} ({adapters.path})."
    return bridged


def bridge_get_batch(adapters: Adapters) -> Callable:
    def get_batch(dataset, batch_size: int, context_length: int, device, rng=None):
        """``get_batch`` through adapters.run_get_batch, which takes no random generator."""
        if rng is not None:
            raise ComponentMissing("get_batch", "seeded sampling (rng) is not available through adapters.run_get_batch")
        return adapters.call("get_batch", "run_get_batch", dataset, batch_size, context_length, device)

    get_batch.__signature__ = inspect.signature(spec.train.get_batch)
    get_batch.kit_unsupported = frozenset({"rng"})  # tests then sample with fresh entropy, or report missing
    return get_batch


def bridge_adamw(adapters: Adapters) -> type:
    """The class ``get_adamw_cls()`` returns. If it gives none, a stand-in that raises when built, so
    that only AdamW's own tests see it: missing for a stub, failed for a broken get_adamw_cls."""
    try:
        optimizer = adapters.module.get_adamw_cls()
    except NotImplementedError:
        return unavailable_optimizer(ComponentMissing("AdamW", "adapters.get_adamw_cls raises NotImplementedError"))
    except Exception as error:
        failure = RuntimeError(f"adapters.get_adamw_cls() failed: {type(error).__name__}: {error}")
        failure.__cause__ = error
        return unavailable_optimizer(failure)
    if optimizer is None:
        return unavailable_optimizer(ComponentMissing("AdamW", "adapters.get_adamw_cls returns None"))
    return optimizer


def bridge_autograd_function(adapters: Adapters, component: str, getter: str) -> type:
    """The autograd Function class ``getter()`` returns; if it gives none, a stand-in whose ``apply`` raises, so that
    only the component's own tests see it: missing for a stub, failed for a getter that crashes."""
    try:
        function = getattr(adapters.module, getter)()
    except NotImplementedError:
        return unavailable_function(ComponentMissing(component, f"adapters.{getter} raises NotImplementedError"))
    except Exception as error:
        failure = RuntimeError(f"adapters.{getter}() failed: {type(error).__name__}: {error}")
        failure.__cause__ = error
        return unavailable_function(failure)
    if function is None:
        return unavailable_function(ComponentMissing(component, f"adapters.{getter} returns None"))
    return function


def unavailable_function(error: Exception) -> type:
    class UnavailableFunction:
        @staticmethod
        def apply(*args, **kwargs):
            raise error.with_traceback(None)

    return UnavailableFunction


def unavailable_optimizer(error: Exception) -> type:
    class UnavailableAdamW(torch.optim.Optimizer):
        def __init__(self, *args, **kwargs):
            raise error.with_traceback(None)

    return UnavailableAdamW


# ---------------------------------------------------------------------------------------------
# Tokenizer


class Tokenizer:
    """The spec's Tokenizer around the object ``get_tokenizer`` returns (bound to one file by load_adapters)."""

    adapters: ClassVar[Adapters]

    def __init__(self, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]],
                 special_tokens: list[str] | None = None):
        self.tokenizer = self.adapters.call("Tokenizer", "get_tokenizer", vocab, merges, special_tokens)

    @classmethod
    def from_files(cls, vocab_filepath, merges_filepath, special_tokens: list[str] | None = None) -> Tokenizer:
        vocab, merges = read_gpt2_files(vocab_filepath, merges_filepath)
        return cls(vocab, merges, special_tokens)

    def method(self, name: str) -> Callable:
        found = getattr(self.tokenizer, name, None)
        if not callable(found):
            raise ComponentMissing("Tokenizer", f"the object adapters.get_tokenizer returns has no {name} method")
        return found

    def encode(self, text: str) -> list[int]:
        try:
            return self.method("encode")(text)
        except NotImplementedError as error:
            raise ComponentMissing("Tokenizer", "its encode raises NotImplementedError") from error

    def decode(self, ids: list[int]) -> str:
        try:
            return self.method("decode")(ids)
        except NotImplementedError as error:
            raise ComponentMissing("Tokenizer", "its decode raises NotImplementedError") from error

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        try:
            ids = self.method("encode_iterable")(iterable)
        except NotImplementedError as error:
            raise ComponentMissing("Tokenizer", "its encode_iterable raises NotImplementedError") from error
        return self.lazily(ids)

    @staticmethod
    def lazily(ids: Iterable[int]) -> Iterator[int]:
        """Yield as the student's iterator yields (a generator raises NotImplementedError only when first advanced)."""
        try:
            yield from ids
        except NotImplementedError as error:
            raise ComponentMissing("Tokenizer", "its encode_iterable raises NotImplementedError") from error


# ---------------------------------------------------------------------------------------------
# Modules


def placeholder(*shape: int, std: float | None, device=None, dtype=None) -> nn.Parameter:
    """A parameter of the spec's shape, filled like the spec's init (truncated normal cut at ±3σ;
    ones when ``std`` is None). The adapters expose no initialization to check; the values only
    keep tests that need *some* weights away from ``torch.empty``'s garbage (NaN included)."""
    weight = torch.empty(*shape, device=device, dtype=dtype)
    if std is None:
        return nn.Parameter(nn.init.ones_(weight))
    return nn.Parameter(nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-3 * std, b=3 * std))


def check_heads(component: str, d_model: int, num_heads: int) -> None:
    """The spec rejects this configuration with a ValueError at construction; adapters have no constructor
    that could show whether the student's code does, so the check is reported missing, not passed."""
    if d_model % num_heads:
        raise ComponentMissing(component, f"d_model={d_model} is not divisible by num_heads={num_heads}: rejecting "
                                          "it at construction cannot be checked through adapters")


def check_ablations(component: str, **chosen: Any) -> None:
    defaults = {"norm": "pre", "ffn": "swiglu", "use_rope": True}
    changed = {name: value for name, value in chosen.items() if value != defaults[name]}
    if changed:
        settings = ", ".join(f"{name}={value!r}" for name, value in changed.items())
        raise ComponentMissing(component, f"the ablation {settings} is not available through adapters "
                                          "(the course's model is pre-norm, SwiGLU, RoPE)")


class BridgedModule(nn.Module):
    """Parameters under the spec's names; ``forward`` hands their current values to the adapter."""

    kit_unsupported: ClassVar[frozenset[str]] = KIT_UNSUPPORTED
    adapter_functions: ClassVar[tuple[str, ...]]  # the component exists when the file has any of these
    adapters: ClassVar[Adapters]  # set on the per-file subclasses that load_adapters makes

    def call(self, function: str, *args: Any) -> Any:
        return self.adapters.call(type(self).__name__, function, *args)

    def part(self, component: str) -> type[BridgedModule]:
        """The bridged class of a submodule: a composite is built from bridged parts, bound to the same file."""
        return self.adapters.classes[component]

    def weights(self) -> dict[str, Tensor]:
        """Current parameter values as plain tensors, keyed as in the course's weight dicts."""
        return {name: parameter.detach() for name, parameter in self.named_parameters()}


class Linear(BridgedModule):
    adapter_functions = ("run_linear",)

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        std = math.sqrt(2.0 / (in_features + out_features))
        self.weight = placeholder(out_features, in_features, std=std, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.call("run_linear", self.in_features, self.out_features, self.weight.detach(), x)


class Embedding(BridgedModule):
    adapter_functions = ("run_embedding",)

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = placeholder(num_embeddings, embedding_dim, std=1.0, device=device, dtype=dtype)

    def forward(self, token_ids: Tensor) -> Tensor:
        return self.call("run_embedding", self.num_embeddings, self.embedding_dim, self.weight.detach(), token_ids)


class RMSNorm(BridgedModule):
    adapter_functions = ("run_rmsnorm",)

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.d_model, self.eps = d_model, eps
        self.weight = placeholder(d_model, std=None, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.call("run_rmsnorm", self.d_model, self.eps, self.weight.detach(), x)


class SwiGLU(BridgedModule):
    adapter_functions = ("run_swiglu",)

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        self.d_model, self.d_ff = d_model, d_ff
        self.w1 = self.part("Linear")(d_model, d_ff, device=device, dtype=dtype)
        self.w2 = self.part("Linear")(d_ff, d_model, device=device, dtype=dtype)
        self.w3 = self.part("Linear")(d_model, d_ff, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        w1, w2, w3 = (w.weight.detach() for w in (self.w1, self.w2, self.w3))
        return self.call("run_swiglu", self.d_model, self.d_ff, w1, w2, w3, x)


class RotaryEmbedding(BridgedModule):
    """No parameters: the configuration that run_rope (and the attention adapters) take."""

    adapter_functions = ("run_rope",)

    def __init__(self, theta: float, d_k: int, max_seq_len: int, device=None):
        super().__init__()
        self.theta, self.d_k, self.max_seq_len = theta, d_k, max_seq_len

    def forward(self, x: Tensor, token_positions: Tensor) -> Tensor:
        return self.call("run_rope", self.d_k, self.theta, self.max_seq_len, x, token_positions)


class MultiHeadSelfAttention(BridgedModule):
    """With ``rope``: run_multihead_self_attention_with_rope at the rope's θ and max_seq_len."""

    adapter_functions = ("run_multihead_self_attention", "run_multihead_self_attention_with_rope")

    def __init__(self, d_model: int, num_heads: int, rope=None, device=None, dtype=None):
        super().__init__()
        check_heads("MultiHeadSelfAttention", d_model, num_heads)
        if rope is not None and rope.d_k * num_heads != d_model:
            # The adapter derives d_k from d_model / num_heads; a different rope.d_k would be dropped silently.
            raise ValueError(f"RoPE was built for d_k={rope.d_k} but d_model={d_model} / num_heads={num_heads} "
                             f"gives {d_model // num_heads}")
        self.d_model, self.num_heads, self.rope = d_model, num_heads, rope
        for name in ("q_proj", "k_proj", "v_proj", "output_proj"):
            setattr(self, name, self.part("Linear")(d_model, d_model, device=device, dtype=dtype))

    def forward(self, x: Tensor, token_positions: Tensor | None = None) -> Tensor:
        q, k, v, o = (p.weight.detach() for p in (self.q_proj, self.k_proj, self.v_proj, self.output_proj))
        if self.rope is None:
            return self.call("run_multihead_self_attention", self.d_model, self.num_heads, q, k, v, o, x)
        if token_positions is None:  # passed explicitly: a student's adapter may not accept None
            token_positions = torch.arange(x.shape[-2], device=x.device)
        return self.call("run_multihead_self_attention_with_rope", self.d_model, self.num_heads,
                         self.rope.max_seq_len, self.rope.theta, q, k, v, o, x, token_positions)


class TransformerBlock(BridgedModule):
    """The course's block: pre-norm, SwiGLU, RoPE at positions 0 … seq − 1 (no other positions)."""

    adapter_functions = ("run_transformer_block",)

    def __init__(self, d_model: int, num_heads: int, d_ff: int, rope=None, norm: str = "pre", ffn: str = "swiglu",
                 device=None, dtype=None):
        super().__init__()
        check_ablations("TransformerBlock", norm=norm, ffn=ffn)
        check_heads("TransformerBlock", d_model, num_heads)
        if rope is None:
            raise ComponentMissing("TransformerBlock", "a block without RoPE is not available through adapters "
                                                       "(run_transformer_block always applies RoPE)")
        self.d_model, self.num_heads, self.d_ff, self.rope = d_model, num_heads, d_ff, rope
        self.attn = self.part("MultiHeadSelfAttention")(d_model, num_heads, rope, device=device, dtype=dtype)
        self.ffn = self.part("SwiGLU")(d_model, d_ff, device=device, dtype=dtype)
        self.ln1 = self.part("RMSNorm")(d_model, device=device, dtype=dtype)
        self.ln2 = self.part("RMSNorm")(d_model, device=device, dtype=dtype)

    def forward(self, x: Tensor, token_positions: Tensor | None = None) -> Tensor:
        seq = x.shape[-2]
        if token_positions is not None and not bool((token_positions == torch.arange(seq, device=x.device)).all()):
            raise ComponentMissing("TransformerBlock", "token_positions other than 0 … seq − 1 are not available "
                                                       "through adapters.run_transformer_block")
        return self.call("run_transformer_block", self.d_model, self.num_heads, self.d_ff, self.rope.max_seq_len,
                         self.rope.theta, self.weights(), x)


class TransformerLM(BridgedModule):
    adapter_functions = ("run_transformer_lm",)

    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                 d_ff: int, rope_theta: float = 10000.0, *, norm: str = "pre", ffn: str = "swiglu",
                 use_rope: bool = True, device=None, dtype=None):
        super().__init__()
        check_ablations("TransformerLM", norm=norm, ffn=ffn, use_rope=use_rope)
        check_heads("TransformerLM", d_model, num_heads)
        self.vocab_size, self.context_length, self.d_model = vocab_size, context_length, d_model
        self.num_layers, self.num_heads, self.d_ff, self.rope_theta = num_layers, num_heads, d_ff, rope_theta
        self.token_embeddings = self.part("Embedding")(vocab_size, d_model, device=device, dtype=dtype)
        rope = self.part("RotaryEmbedding")(rope_theta, d_model // num_heads, context_length, device=device)
        self.layers = nn.ModuleList(
            self.part("TransformerBlock")(d_model, num_heads, d_ff, rope, device=device, dtype=dtype)
            for _ in range(num_layers)
        )
        self.ln_final = self.part("RMSNorm")(d_model, device=device, dtype=dtype)
        self.lm_head = self.part("Linear")(d_model, vocab_size, device=device, dtype=dtype)

    def forward(self, token_ids: Tensor) -> Tensor:
        return self.call("run_transformer_lm", self.vocab_size, self.context_length, self.d_model, self.num_layers,
                         self.num_heads, self.d_ff, self.rope_theta, self.weights(), token_ids)


MODULES: tuple[type[BridgedModule], ...] = (Linear, Embedding, RMSNorm, SwiGLU, RotaryEmbedding,
                                            MultiHeadSelfAttention, TransformerBlock, TransformerLM)


# ---------------------------------------------------------------------------------------------
# Distributed

# Spec component -> (the getter, the after-backward hook, the train-batch-start hook or None): A2's DDP adapters.
DDP_ADAPTERS: dict[str, tuple[str, str, str | None]] = {
    "DDPIndividualParameters": ("get_ddp_individual_parameters", "ddp_individual_parameters_on_after_backward", None),
    "DDPBucketed": ("get_ddp_bucketed", "ddp_bucketed_on_after_backward", "ddp_bucketed_on_train_batch_start"),
}


class NoOptimizer:
    """Handed to the DDP hooks in place of the optimizer the course's tests pass: the spec's interface has none."""

    def __init__(self, component: str, hook: str):
        self.component, self.hook = component, hook

    def __getattr__(self, name: str) -> Any:
        raise ComponentMissing(self.component, f"adapters.{self.hook} uses its optimizer argument (.{name}), which "
                                               "the spec's interface does not provide")


class DataParallel:
    """The spec's DDP wrapper around the object the course's getter returns (bound to one file and component)."""

    adapters: ClassVar[Adapters]
    component: ClassVar[str]

    def __init__(self, module: nn.Module, *args: Any):
        getter, self.after_backward, self.batch_start = DDP_ADAPTERS[self.component]
        self.ddp = self.adapters.call(self.component, getter, module, *args)
        self.wrapped = module

    @property
    def module(self) -> nn.Module:
        return getattr(self.ddp, "module", self.wrapped)

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        if self.batch_start is not None:
            optimizer = NoOptimizer(self.component, self.batch_start)
            self.adapters.call(self.component, self.batch_start, self.ddp, optimizer)
        return self.ddp(*inputs, **kwargs)

    def finish_gradient_synchronization(self) -> None:
        self.adapters.call(self.component, self.after_backward, self.ddp,
                           NoOptimizer(self.component, self.after_backward))

    def __getattr__(self, name: str) -> Any:  # parameters(), named_parameters(), state_dict(), train() ...
        if name == "ddp":  # not set yet: the getter failed in __init__
            raise AttributeError(name)
        return getattr(self.ddp, name)


class ShardedOptimizer:
    """``ShardedOptimizer(params, optimizer_cls, **kwargs)`` is the object get_sharded_optimizer returns."""

    adapters: ClassVar[Adapters]

    def __new__(cls, params, optimizer_cls: type[torch.optim.Optimizer], **kwargs: Any):
        return cls.adapters.call("ShardedOptimizer", "get_sharded_optimizer", params, optimizer_cls, **kwargs)


class FSDP(DataParallel):
    """The spec's FSDP around the object ``get_fsdp`` returns: DDP's bridge, plus ``full_state_dict``."""

    component = "FSDP"
    after_backward, batch_start = "fsdp_on_after_backward", None

    def __init__(self, module: nn.Module, compute_dtype: torch.dtype | None = None):
        # compute_dtype only when given: a get_fsdp(module) without it still serves the float32 tests.
        self.ddp = self.adapters.call("FSDP", "get_fsdp", module, *(() if compute_dtype is None else (compute_dtype,)))
        self.wrapped = module

    def finish_gradient_synchronization(self) -> None:
        if self.adapters.has(self.after_backward):
            super().finish_gradient_synchronization()
        else:
            self.ddp.finish_gradient_synchronization()

    def full_state_dict(self) -> dict[str, Tensor]:
        if self.adapters.has("fsdp_gather_full_params"):
            return self.adapters.call("FSDP", "fsdp_gather_full_params", self.ddp)
        return self.ddp.full_state_dict()
