"""The Transformer's bridge (spec/nn.py, A1 §3).

Functions become thin wrappers with the spec's signatures (``softmax(x, dim)`` calls ``run_softmax(x, dim)``).
Modules become ``torch.nn.Module`` classes with the spec's constructors and parameter
names, so that ``load_state_dict`` with the spec's keys works; ``forward`` hands the
current parameter values to the adapter (``Linear(x)`` calls ``run_linear(d_in, d_out,
weight, x)``; ``TransformerLM`` passes its ``state_dict``-keyed weights, the course's dict).

What adapters cannot show: they take weights by value, so the student's initialization,
gradients to the module's parameters and the ablation switches (A1 §7.3) stay out of
reach; nor do they take a dtype (the course's ``run_*`` build their modules in the default
float32, so float64 parameters handed to them are a mismatch of the bridge, not of the student). Bridged modules declare that in ``kit_unsupported``; the tests that need those
features call ``needs(...)`` and report the component *missing*, not failed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

import spec.nn
from spec import ComponentMissing
from spec.adapters.common import Adapters, bound, bridge_functions

# Spec function -> the adapter taking the same arguments in the same order (names may differ).
FUNCTIONS: dict[str, tuple[Callable, str]] = {
    "silu": (spec.nn.silu, "run_silu"),
    "softmax": (spec.nn.softmax, "run_softmax"),
    "scaled_dot_product_attention": (spec.nn.scaled_dot_product_attention, "run_scaled_dot_product_attention"),
}
# What no adapters file lets the kit check (see the module docstring).
KIT_UNSUPPORTED = frozenset({"initialization", "autograd", "ablations", "dtype"})


def members(adapters: Adapters) -> dict[str, Any]:
    """The nn components that the adapters file provides, bridged."""
    # One subclass of each bridged module per file, bound to it; composites build their parts from these.
    parts: dict[str, type[BridgedModule]] = {}
    parts |= {base.__name__: bound(adapters, base, parts=parts) for base in MODULES}
    found: dict[str, Any] = bridge_functions(adapters, FUNCTIONS)
    found |= {name: module for name, module in parts.items()
              if any(adapters.has(function) for function in module.adapter_functions)}
    return found


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
    adapters: ClassVar[Adapters]  # set on the per-file subclasses that members() makes
    parts: ClassVar[dict[str, type[BridgedModule]]]  # those subclasses, by component

    def call(self, function: str, *args: Any) -> Any:
        return self.adapters.call(type(self).__name__, function, *args)

    def part(self, component: str) -> type[BridgedModule]:
        """The bridged class of a submodule: a composite is built from bridged parts, bound to the same file."""
        return self.parts[component]

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
BRIDGED = (*FUNCTIONS, *(module.__name__ for module in MODULES))  # what this bridge can provide
