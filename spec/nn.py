"""The Transformer LM's building blocks (handout A1 §3). The docstrings are normative.

Every module subclasses ``torch.nn.Module``, accepts ``device`` and ``dtype`` keyword
arguments, and keeps the parameter names given here: the state-dict keys are part of the
spec, so that the course's weights load one to one.

(strict) Every module's parameters and output follow the ``dtype`` and ``device`` it is given
(float64 included), and ``load_state_dict`` with a wrongly shaped weight raises RuntimeError or
ValueError naming the key. Both are the strict level: the course's tests check neither.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

# This area's components, in the report's order (spec.COMPONENTS is built from them).
__all__ = [
    "Linear", "Embedding", "RMSNorm", "silu", "SwiGLU", "RotaryEmbedding", "softmax", "scaled_dot_product_attention",
    "MultiHeadSelfAttention", "TransformerBlock", "TransformerLM",
]


class Linear(Protocol):
    """y = x Wᵀ, no bias (A1 §3.4.2).

    - ``weight`` is a Parameter of shape (d_out, d_in): stored as W, not Wᵀ.
    - (strict) Init: truncated normal, mean 0, std σ = √(2 / (d_in + d_out)), cut at ±3σ.
    - Any number of leading dims.
    """

    weight: torch.nn.Parameter

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None): ...

    def __call__(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]: ...


class Embedding(Protocol):
    """Row lookup into ``weight`` of shape (num_embeddings, embedding_dim) (A1 §3.4.3).

    - (strict) Init: N(0, 1) truncated at ±3.
    - (strict) A token id outside [0, num_embeddings) raises IndexError or ValueError naming the id
      and the vocabulary size (never a silent wrap-around or an opaque device assert).
    """

    weight: torch.nn.Parameter

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None): ...

    def __call__(self, token_ids: Int[Tensor, "..."]) -> Float[Tensor, "... d_model"]: ...


class RMSNorm(Protocol):
    """x / √(mean(x²) + eps) · g over the last dim (A1 §3.5.1, eq. 4).

    - eps = 1e-5 by default, inside the square root.
    - Computed in float32 and cast back to the input dtype (fp16 inputs of magnitude 10⁴
      must not overflow).
    - ``weight`` (the gain g) has shape (d_model,) and starts at ones.
    """

    weight: torch.nn.Parameter

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None): ...

    def __call__(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]: ...


def silu(x: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    """SiLU(x) = x · σ(x), elementwise (A1 eq. 5)."""
    ...


class SwiGLU(Protocol):
    """FFN(x) = W2(SiLU(W1 x) ⊙ W3 x) (A1 §3.5.2, eq. 7).

    - Submodules ``w1``, ``w3``: Linear(d_model → d_ff); ``w2``: Linear(d_ff → d_model).
    - The caller picks d_ff; the course's choice is ≈ 8/3 · d_model rounded to a multiple of 64.
    """

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None): ...

    def __call__(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]: ...


class RotaryEmbedding(Protocol):
    """RoPE (A1 §3.5.3).

    - Rotates adjacent pairs (x₂ₖ, x₂ₖ₊₁), k = 0 … d_k/2 − 1, by angle pos · θ^(−2k/d_k):
      (x₂ₖ cos − x₂ₖ₊₁ sin, x₂ₖ sin + x₂ₖ₊₁ cos). The output stays interleaved (pair k at
      positions 2k, 2k+1), not split into halves. The handout indexes k from 1; read
      literally that is off by one (CONVENTIONS.md).
    - ``token_positions`` (..., seq) broadcasts against x's leading dims.
    - No learnable parameters.
    - (strict) A position ≥ max_seq_len raises ValueError; exposes ``theta``, ``d_k`` and ``max_seq_len``.
    """

    theta: float
    d_k: int
    max_seq_len: int

    def __init__(self, theta: float, d_k: int, max_seq_len: int, device=None): ...

    def __call__(self, x: Float[Tensor, "... seq d_k"], token_positions: Int[Tensor, "... seq"]
                 ) -> Float[Tensor, "... seq d_k"]: ...


def softmax(x: Float[Tensor, "..."], dim: int) -> Float[Tensor, "..."]:
    """exp(x − max) / Σ exp(x − max) along ``dim`` (A1 eq. 10): finite for inputs of any magnitude."""
    ...


def scaled_dot_product_attention(
    Q: Float[Tensor, "... n_q d_k"],
    K: Float[Tensor, "... n_k d_k"],
    V: Float[Tensor, "... n_k d_v"],
    mask: Bool[Tensor, "... n_q n_k"] | None = None,
) -> Float[Tensor, "... n_q d_v"]:
    """softmax(Q Kᵀ / √d_k) V (A1 eq. 11).

    - ``mask`` is boolean; True means query i MAY attend to key j. Masked-out keys get
      probability exactly 0; the rest sum to 1. Any number of leading dims.
    """
    ...


class MultiHeadSelfAttention(Protocol):
    """Causal multi-head self-attention (A1 §3.5.5, eq. 14).

    - d_k = d_v = d_model / num_heads.
    - (strict) d_model not divisible by num_heads raises ValueError.
    - Submodules ``q_proj``, ``k_proj``, ``v_proj``, ``output_proj``: Linear(d_model → d_model).
      Projection rows are grouped by head: rows h·d_k … (h+1)·d_k − 1 belong to head h.
    - Causal: query i attends to keys j ≤ i. With ``rope``, RoPE is applied to Q and K (not V),
      identically for every head, at ``token_positions`` (default 0 … seq − 1).
    """

    def __init__(self, d_model: int, num_heads: int, rope: RotaryEmbedding | None = None, device=None,
                 dtype=None): ...

    def __call__(self, x: Float[Tensor, "... seq d_model"], token_positions: Int[Tensor, "... seq"] | None = None
                 ) -> Float[Tensor, "... seq d_model"]: ...


class TransformerBlock(Protocol):
    """Pre-norm block (A1 §3.5, eq. 15): z = x + MHA(ln1(x)); y = z + FFN(ln2(z)).

    - Submodules ``attn`` (MultiHeadSelfAttention), ``ffn`` (SwiGLU), ``ln1``, ``ln2`` (RMSNorm).
    - (strict) Ablations (A1 §7.3): ``norm="post"``: z = ln1(x + MHA(x)), y = ln2(z + FFN(z));
      ``norm="none"``: no ``ln1``/``ln2``; ``ffn="silu"``: FFN(x) = W2 SiLU(W1 x) (no ``w3``).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, rope: RotaryEmbedding | None = None,
                 norm: Literal["pre", "post", "none"] = "pre", ffn: Literal["swiglu", "silu"] = "swiglu",
                 device=None, dtype=None): ...

    def __call__(self, x: Float[Tensor, "... seq d_model"], token_positions: Int[Tensor, "... seq"] | None = None
                 ) -> Float[Tensor, "... seq d_model"]: ...


class TransformerLM(Protocol):
    """Decoder-only LM (A1 §3.1, §3.6): embeddings → blocks → ln_final → lm_head.

    - Returns unnormalized logits (batch, seq, vocab_size) for token ids (batch, seq), seq up to
      ``context_length``; the LM head is not tied (unless ``tie_embeddings``, below).
    - (strict) Any leading dims: token ids (..., seq), an unbatched (seq,) included, give logits
      (..., seq, vocab_size). The course's LM takes (batch, seq) only.
    - State-dict keys: ``token_embeddings.weight``, ``layers.{i}.attn.{q,k,v,output}_proj.weight``,
      ``layers.{i}.ln1.weight``, ``layers.{i}.ffn.{w1,w2,w3}.weight``, ``layers.{i}.ln2.weight``,
      ``ln_final.weight``, ``lm_head.weight``. One RoPE (θ = ``rope_theta``, d_k = d_model /
      num_heads) shared by every layer, positions 0 … seq − 1.
    - (strict) Exposes ``context_length``. Errors: seq > context_length raises ValueError; a token id
      out of range raises IndexError or ValueError naming the id; d_model not divisible by num_heads
      raises ValueError.
    - (strict) Ablations (A1 §7.3): ``norm`` and ``ffn`` as in TransformerBlock, where ``norm="post"``
      and ``"none"`` also drop ``ln_final``; ``use_rope=False`` is NoPE (no position signal).
    - (strict) The A3 training API's model options (its ``architecture_config``, a Llama's), each off by default,
      where the model is the one above exactly:
      ``num_kv_heads`` (default ``num_heads``; must divide it, else ValueError): grouped-query attention.
      ``k_proj`` and ``v_proj`` are Linear(d_model → num_kv_heads · head_dim), rows grouped by key/value head;
      key/value head g serves the r = num_heads / num_kv_heads consecutive query heads g·r … g·r + r − 1
      (Llama's ``repeat_kv``, ``repeat_interleave`` over heads, not ``repeat``).
      ``head_dim`` (default d_model / num_heads): the width of every head, apart from d_model (d_model need not
      be divisible by num_heads then). ``q_proj`` is Linear(d_model → num_heads · head_dim), ``output_proj``
      Linear(num_heads · head_dim → d_model); scores are scaled by 1/√head_dim; RoPE has d_k = head_dim.
      ``tie_embeddings`` (default False): the LM head is the token embedding, one Parameter: logits =
      x Eᵀ with E = ``token_embeddings.weight``, whose gradient sums both uses; ``parameters()`` lists it once and
      the state dict keeps both keys, ``lm_head.weight`` holding the same tensor (as torch and HF Llama do). E is
      initialized as the LM head, a Linear(d_model → vocab_size): truncated normal, std √(2 / (d_model +
      vocab_size)), cut at ±3σ (the embedding's N(0, 1) would start the logits at std √d_model).
      ``norm_eps`` (default 1e-5, RMSNorm's): the ε of every RMSNorm (ln1, ln2, ln_final; the API's ``rms_norm_eps``).
    """

    context_length: int

    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                 d_ff: int, rope_theta: float = 10000.0, *, norm: Literal["pre", "post", "none"] = "pre",
                 ffn: Literal["swiglu", "silu"] = "swiglu", use_rope: bool = True, num_kv_heads: int | None = None,
                 head_dim: int | None = None, tie_embeddings: bool = False, norm_eps: float = 1e-5,
                 device=None, dtype=None): ...

    def __call__(self, token_ids: Int[Tensor, "... seq"]) -> Float[Tensor, "... seq vocab"]: ...
