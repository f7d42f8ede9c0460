"""Reference Transformer LM building blocks (handout A1 §3).

Written from torch primitives only: no torch.nn layers and no torch.nn.functional, as the
handout demands. The normative text for every convention is in ``spec/nn.py``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

# The components of spec/nn.py, with the same names.
__all__ = [
    "Linear", "Embedding", "RMSNorm", "silu", "SwiGLU", "RotaryEmbedding", "softmax", "scaled_dot_product_attention",
    "MultiHeadSelfAttention", "TransformerBlock", "TransformerLM",
]

Norm = Literal["pre", "post", "none"]
FeedForward = Literal["swiglu", "silu"]


class Linear(nn.Module):
    """y = x Wᵀ, W stored (d_out, d_in), no bias; trunc-normal init (A1 §3.4.2)."""

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype))
        std = math.sqrt(2.0 / (in_features + out_features))
        nn.init.trunc_normal_(self.weight, mean=0.0, std=std, a=-3 * std, b=3 * std)

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight.T  # (..., d_in) @ (d_in, d_out) -> (..., d_out)


class Embedding(nn.Module):
    """Row lookup into a (vocab, d_model) matrix; N(0, 1) init cut at ±3 (A1 §3.4.3)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype))
        nn.init.trunc_normal_(self.weight, mean=0.0, std=1.0, a=-3.0, b=3.0)

    def forward(self, token_ids: Tensor) -> Tensor:
        check_token_ids(token_ids, self.num_embeddings)
        return self.weight[token_ids]  # (...) -> (..., d_model)


def check_token_ids(token_ids: Tensor, vocab_size: int) -> None:
    """Raise a clear error instead of an opaque index failure (a device assert on CUDA)."""
    if token_ids.dtype.is_floating_point or token_ids.dtype == torch.bool:
        raise TypeError(f"token ids must be an integer tensor, got {token_ids.dtype}")
    if token_ids.numel() == 0 or torch.compiler.is_compiling():
        return
    low, high = int(token_ids.min()), int(token_ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise IndexError(f"token id {bad} is out of range for a vocabulary of {vocab_size} (valid: 0..{vocab_size - 1})")


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · g, computed in float32, cast back (A1 §3.5.1)."""

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        in_dtype = x.dtype
        x = x.to(torch.float32)  # x² overflows in fp16 from |x| ≈ 256
        inv_rms = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (x * inv_rms * self.weight.to(torch.float32)).to(in_dtype)


def silu(x: Tensor) -> Tensor:
    """SiLU(x) = x · σ(x) (A1 eq. 5); torch.sigmoid is allowed by the handout for stability."""
    return x * torch.sigmoid(x)


class SwiGLU(nn.Module):
    """FFN(x) = W2(SiLU(W1 x) ⊙ W3 x) (A1 eq. 7)."""

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype)
        self.w3 = Linear(d_model, d_ff, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(silu(self.w1(x)) * self.w3(x))


class SiLUFeedForward(nn.Module):
    """Ungated ablation FFN(x) = W2 SiLU(W1 x) (A1 §7.3); use d_ff = 4 d_model to match SwiGLU's size."""

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(silu(self.w1(x)))


class RotaryEmbedding(nn.Module):
    """RoPE on adjacent pairs (x₂ₖ, x₂ₖ₊₁), angle pos · θ^(−2k/d), k = 0…d/2−1 (A1 §3.5.3)."""

    def __init__(self, theta: float, d_k: int, max_seq_len: int, device=None):
        super().__init__()
        if d_k % 2:
            raise ValueError(f"RoPE needs an even head dimension, got d_k={d_k}")
        self.theta, self.d_k, self.max_seq_len = theta, d_k, max_seq_len
        inv_freq = theta ** (-torch.arange(0, d_k, 2, device=device, dtype=torch.float64) / d_k)  # (d_k/2,)
        angles = torch.arange(max_seq_len, device=device, dtype=torch.float64)[:, None] * inv_freq  # (seq, d_k/2)
        # Buffers, not parameters, and not persistent: they are derived from the config.
        self.register_buffer("cos", angles.cos().to(torch.float32), persistent=False)
        self.register_buffer("sin", angles.sin().to(torch.float32), persistent=False)

    def forward(self, x: Tensor, token_positions: Tensor | None = None) -> Tensor:
        """``token_positions`` None means 0 … seq−1: checked on the shape, so no host sync on a GPU."""
        return self.rotate(x, *self.angles(x.shape[-2], token_positions))

    def angles(self, seq: int, token_positions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """cos and sin of the rotation angles, (seq, d_k/2) or (..., seq, d_k/2) at ``token_positions``."""
        if token_positions is None:
            if seq > self.max_seq_len:
                raise ValueError(f"sequence length {seq} is beyond RoPE's max_seq_len={self.max_seq_len}")
            return self.cos[:seq], self.sin[:seq]
        if not torch.compiler.is_compiling() and token_positions.numel() \
                and int(token_positions.max()) >= self.max_seq_len:
            raise ValueError(
                f"token position {int(token_positions.max())} is beyond RoPE's max_seq_len={self.max_seq_len}"
            )
        return self.cos[token_positions], self.sin[token_positions]

    @staticmethod
    def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """x (..., d_k) with its pairs rotated by the angles whose cos and sin (..., d_k/2) broadcast against it."""
        pairs = x.float().unflatten(-1, (-1, 2))  # (..., d_k) -> (..., d_k/2, 2)
        even, odd = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)  # (..., d_k/2, 2)
        return rotated.flatten(-2).to(x.dtype)  # interleaved again: (..., d_k)


def softmax(x: Tensor, dim: int) -> Tensor:
    """exp(x − max) / Σ exp(x − max) along ``dim`` (A1 eq. 10)."""
    # Detached: the shift cancels in the gradient, so autograd need not route one through amax.
    shifted = x - x.amax(dim=dim, keepdim=True).detach()
    exp = torch.exp(shifted)
    return exp / exp.sum(dim=dim, keepdim=True)


def scaled_dot_product_attention(Q: Tensor, K: Tensor, V: Tensor, mask: Tensor | None = None) -> Tensor:
    """softmax(Q Kᵀ / √d_k) V with a boolean mask, True = may attend (A1 eq. 11)."""
    scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])  # (..., n_q, n_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return softmax(scores, dim=-1) @ V  # (..., n_q, d_v)


class MultiHeadSelfAttention(nn.Module):
    """Causal multi-head self-attention, d_k = d_v = d_model / h (A1 §3.5.5).

    Options of the A3 training API's models (Llama's): ``num_kv_heads`` < ``num_heads`` is grouped-query attention,
    each key/value head serving ``num_heads / num_kv_heads`` consecutive query heads; ``head_dim`` sets the head
    width apart from d_model / num_heads, the output projection then mapping num_heads · head_dim back to d_model.
    """

    # A fused causal kernel (q, k, v) (..., h, seq, d_head) -> (..., h, seq, d_head) used instead of the mask and
    # the (seq, seq) scores; None is the reference path.
    attention_kernel = None
    # A fused kernel from the packed projection to the heads, RoPE included: (qkv (Z, seq, h + 2 h_kv, d_head),
    # cos, sin (None without RoPE), h) -> (Z, seq, h, d_head); it takes precedence over attention_kernel.
    # impl.kernels.fast_lm.use_kernels sets impl.kernels.multihead.rotary_flash_attention.
    fused_attention = None

    def __init__(self, d_model: int, num_heads: int, rope: RotaryEmbedding | None = None, device=None, dtype=None,
                 *, num_kv_heads: int | None = None, head_dim: int | None = None):
        super().__init__()
        self.d_head = head_dim_of(d_model, num_heads, num_kv_heads, head_dim)
        self.num_heads, self.num_kv_heads = num_heads, num_heads if num_kv_heads is None else num_kv_heads
        if rope is not None and rope.d_k != self.d_head:
            raise ValueError(f"RoPE was built for d_k={rope.d_k} but the head dimension is {self.d_head}")
        self.rope = rope
        q_width, kv_width = self.num_heads * self.d_head, self.num_kv_heads * self.d_head
        self.q_proj = Linear(d_model, q_width, device=device, dtype=dtype)
        self.k_proj = Linear(d_model, kv_width, device=device, dtype=dtype)
        self.v_proj = Linear(d_model, kv_width, device=device, dtype=dtype)
        self.output_proj = Linear(q_width, d_model, device=device, dtype=dtype)

    def forward(self, x: Tensor, token_positions: Tensor | None = None, cache: LayerCache | None = None) -> Tensor:
        seq = x.shape[-2]
        if cache is None and self.fused_attention is not None:
            # One matmul on the concatenated weights: the fused operator's backward writes dq, dk and dv into one
            # gradient, so the split costs no concatenation there.
            w_qkv = torch.cat((self.q_proj.weight, self.k_proj.weight, self.v_proj.weight))  # (h + 2 h_kv) d_head rows
            return self.output_proj(self.fused_forward(x @ w_qkv.T, token_positions))
        # Three projections, not one matmul on the concatenated weights split three ways: the backward of such a
        # split concatenates dq, dk and dv, which torch.compile fused with RoPE's backward into one kernel slowed by
        # per-element index arithmetic (0.46 ms a layer at GPT-2 small on an H200; bench/results/h200-lm-step-rope.md).
        q = self.q_proj(x).unflatten(-1, (self.num_heads, self.d_head))  # (..., seq, h, d_head)
        k = self.k_proj(x).unflatten(-1, (self.num_kv_heads, self.d_head))  # (..., seq, h_kv, d_head)
        v = self.v_proj(x).unflatten(-1, (self.num_kv_heads, self.d_head))
        if cache is not None:
            q, k, v = (t.transpose(-3, -2) for t in (q, k, v))
            return self.output_proj(self.attend_with_cache(q, k, v, cache).transpose(-3, -2).flatten(-2))
        if self.rope is not None:
            # Rotated with the heads after the sequence, the angles (..., seq, 1, d_head/2) shared by every head: the
            # rotated q and k are laid out token by token, as the projections' output and input are, so that
            # attention's transposed views of them (and the gradients, in the same order) need no copies.
            cos, sin = (t.unsqueeze(-2) for t in self.rope.angles(seq, token_positions))
            q, k = self.rope.rotate(q, cos, sin), self.rope.rotate(k, cos, sin)
        q, k, v = (t.transpose(-3, -2) for t in (q, k, v))  # (..., h or h_kv, seq, d_head): views
        k, v = self.share_kv_heads(k), self.share_kv_heads(v)  # (..., h, seq, d_head)
        if self.attention_kernel is not None:
            heads = self.attention_kernel(q, k, v, is_causal=True)  # (..., h, seq, d_head)
        else:
            causal = torch.ones(seq, seq, dtype=torch.bool, device=x.device).tril()  # key j ≤ query i
            heads = scaled_dot_product_attention(q, k, v, causal)  # (..., h, seq, d_head)
        return self.output_proj(heads.transpose(-3, -2).flatten(-2))  # (..., seq, h · d_head) -> (..., seq, d_model)

    def fused_forward(self, qkv: Tensor, token_positions: Tensor | None) -> Tensor:
        """(..., seq, (h + 2 h_kv) d_head) -> (..., seq, h · d_head) through ``fused_attention``."""
        *lead, seq, _ = qkv.shape
        packed = qkv.reshape(-1, seq, self.num_heads + 2 * self.num_kv_heads, self.d_head)
        cos = sin = None
        if self.rope is not None:
            # (seq, d_head/2), or (..., seq, d_head/2) at token_positions: one row of angles per packed sequence
            cos, sin = (t if t.dim() == 2 else t.expand(*lead, seq, t.shape[-1]).reshape(-1, seq, t.shape[-1])
                        for t in self.rope.angles(seq, token_positions))
        heads = self.fused_attention(packed, cos, sin, self.num_heads)  # (Z, seq, h, d_head)
        return heads.reshape(*lead, seq, self.num_heads * self.d_head)

    def share_kv_heads(self, kv: Tensor) -> Tensor:
        """(..., h_kv, seq, d_head) -> (..., h, seq, d_head): key/value head g serves query heads g·r … g·r + r − 1,
        r = h / h_kv (repeat_interleave, as Llama's repeat_kv; tiling would pair the heads wrongly)."""
        groups = self.num_heads // self.num_kv_heads
        return kv if groups == 1 else kv.repeat_interleave(groups, dim=-3)

    def attend_with_cache(self, q: Tensor, k: Tensor, v: Tensor, cache: LayerCache) -> Tensor:
        """The new tokens (q (..., h, seq, d_head); k, v (..., h_kv, seq, d_head)) follow the cached ones: positions
        past … past+seq−1. The cache keeps h_kv heads (grouped-query attention's memory saving)."""
        past, seq = cache.length, q.shape[-2]
        if self.rope is not None:
            positions = torch.arange(past, past + seq, device=q.device)
            q, k = self.rope(q, positions), self.rope(k, positions)
        k, v = cache.append(k, v)  # (..., h_kv, past + seq, d_head)
        causal = torch.ones(seq, past + seq, dtype=torch.bool, device=q.device).tril(diagonal=past)  # key j ≤ past+i
        return scaled_dot_product_attention(q, self.share_kv_heads(k), self.share_kv_heads(v), causal)


def head_dim_of(d_model: int, num_heads: int, num_kv_heads: int | None, head_dim: int | None) -> int:
    """The head width (d_model / num_heads unless ``head_dim`` is given), after checking the head counts."""
    if num_kv_heads is not None and (num_kv_heads < 1 or num_heads % num_kv_heads):
        raise ValueError(f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads}")
    if head_dim is None:
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads} (or give head_dim)")
        return d_model // num_heads
    if head_dim < 1:
        raise ValueError(f"head_dim={head_dim} must be positive")
    return head_dim


class LayerCache:
    """One attention layer's keys and values (..., h_kv, t, d_head) of the positions seen so far, RoPE applied."""

    def __init__(self, keys: Tensor | None = None, values: Tensor | None = None):
        self.keys, self.values = keys, values

    @property
    def length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[-2]

    def append(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        if self.keys is not None:
            keys, values = torch.cat((self.keys, keys), dim=-2), torch.cat((self.values, values), dim=-2)
        self.keys, self.values = keys, values
        return keys, values


class KVCache:
    """A TransformerLM's keys and values, one LayerCache per layer: decoding then runs the model on the new tokens
    only, instead of the whole window every step (A1 §6 decodes without one; rollouts for A5 need the speed)."""

    def __init__(self, num_layers: int):
        self.layers = [LayerCache() for _ in range(num_layers)]

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0

    def repeat_rows(self, n: int) -> KVCache:
        """Each batch row n times in a row (one prompt's prefill shared by its n samples)."""
        repeated = KVCache(0)
        repeated.layers = [LayerCache(layer.keys.repeat_interleave(n, dim=0), layer.values.repeat_interleave(n, dim=0))
                           for layer in self.layers]
        return repeated

    def keep_rows(self, rows: Tensor) -> None:
        """Drop the other batch rows (finished samples stop costing compute)."""
        for layer in self.layers:
            layer.keys, layer.values = layer.keys[rows], layer.values[rows]


class TransformerBlock(nn.Module):
    """Pre-norm block: z = x + MHA(ln1(x)); y = z + FFN(ln2(z)) (A1 §3.5, eq. 15).

    Ablations (A1 §7.3): ``norm="post"`` gives z = ln1(x + MHA(x)), y = ln2(z + FFN(z));
    ``norm="none"`` drops both norms; ``ffn="silu"`` swaps in the ungated SiLU FFN. ``num_kv_heads`` and
    ``head_dim``: as in MultiHeadSelfAttention; ``norm_eps``: the RMSNorms' epsilon.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, rope: RotaryEmbedding | None = None,
                 norm: Norm = "pre", ffn: FeedForward = "swiglu", device=None, dtype=None, *,
                 num_kv_heads: int | None = None, head_dim: int | None = None, norm_eps: float = 1e-5):
        super().__init__()
        if norm not in ("pre", "post", "none"):
            raise ValueError(f"norm must be 'pre', 'post' or 'none', got {norm!r}")
        if ffn not in ("swiglu", "silu"):
            raise ValueError(f"ffn must be 'swiglu' or 'silu', got {ffn!r}")
        self.norm = norm
        self.attn = MultiHeadSelfAttention(d_model, num_heads, rope, device=device, dtype=dtype,
                                           num_kv_heads=num_kv_heads, head_dim=head_dim)
        self.ffn = (SwiGLU if ffn == "swiglu" else SiLUFeedForward)(d_model, d_ff, device=device, dtype=dtype)
        if norm != "none":
            self.ln1 = RMSNorm(d_model, norm_eps, device=device, dtype=dtype)
            self.ln2 = RMSNorm(d_model, norm_eps, device=device, dtype=dtype)

    def forward(self, x: Tensor, token_positions: Tensor | None = None, cache: LayerCache | None = None) -> Tensor:
        if self.norm == "pre":
            z = x + self.attn(self.ln1(x), token_positions, cache)
            return z + self.ffn(self.ln2(z))
        if self.norm == "post":
            z = self.ln1(x + self.attn(x, token_positions, cache))
            return self.ln2(z + self.ffn(z))
        z = x + self.attn(x, token_positions, cache)
        return z + self.ffn(z)


class TransformerLM(nn.Module):
    """Embeddings → blocks → final RMSNorm → untied LM head; returns logits (A1 §3.1, §3.6).

    Ablations (A1 §7.3): ``norm`` and ``ffn`` as in TransformerBlock (``norm="post"`` and
    ``"none"`` also drop ``ln_final``); ``use_rope=False`` is NoPE. The A3 training API's options:
    ``num_kv_heads`` and ``head_dim`` as in MultiHeadSelfAttention; ``tie_embeddings`` makes
    ``token_embeddings.weight`` and ``lm_head.weight`` one Parameter (its gradient the sum of both uses), initialized
    as the LM head; ``norm_eps`` is every RMSNorm's epsilon (the API's ``rms_norm_eps``).
    """

    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                 d_ff: int, rope_theta: float = 10000.0, *, norm: Norm = "pre", ffn: FeedForward = "swiglu",
                 use_rope: bool = True, num_kv_heads: int | None = None, head_dim: int | None = None,
                 tie_embeddings: bool = False, norm_eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        d_head = head_dim_of(d_model, num_heads, num_kv_heads, head_dim)
        self.vocab_size, self.context_length = vocab_size, context_length
        self.token_embeddings = Embedding(vocab_size, d_model, device=device, dtype=dtype)
        # One rotation table shared by every layer (A1 §3.5.3).
        rope = RotaryEmbedding(rope_theta, d_head, context_length, device=device) if use_rope else None
        self.layers = nn.ModuleList(
            TransformerBlock(d_model, num_heads, d_ff, rope, norm=norm, ffn=ffn, device=device, dtype=dtype,
                             num_kv_heads=num_kv_heads, head_dim=head_dim, norm_eps=norm_eps)
            for _ in range(num_layers)
        )
        if norm == "pre":
            self.ln_final = RMSNorm(d_model, norm_eps, device=device, dtype=dtype)
        self.lm_head = Linear(d_model, vocab_size, device=device, dtype=dtype)
        if tie_embeddings:
            # The same Parameter under both names: parameters() lists it once; the state dict keeps both keys. The
            # head's (Linear init, std √(2/(d_model + vocab))): with the embedding's N(0, 1) the first logits would
            # have std √d_model, a first loss of ~400 at d_model 512 instead of ln(vocab).
            self.token_embeddings.weight = self.lm_head.weight

    def forward(self, token_ids: Tensor, cache: KVCache | None = None, *, return_hidden: bool = False) -> Tensor:
        """Logits of ``token_ids``; with a ``cache``, of the tokens that follow the cached ones (which it extends).
        ``return_hidden``: the LM head's input instead, (..., seq, d_model), for a loss that applies the head itself
        (impl/kernels/linear_cross_entropy.py)."""
        seq = token_ids.shape[-1] + (0 if cache is None else cache.length)
        if seq > self.context_length:
            raise ValueError(f"sequence length {seq} exceeds the model's context_length={self.context_length}")
        x = self.token_embeddings(token_ids)  # (..., seq) -> (..., seq, d_model)
        for i, layer in enumerate(self.layers):
            # Positions 0 … seq−1 (after the cached ones), which the length check above keeps within RoPE's table.
            x = layer(x, cache=None if cache is None else cache.layers[i])
        if hasattr(self, "ln_final"):
            x = self.ln_final(x)
        return x if return_hidden else self.lm_head(x)  # (..., seq, vocab)
