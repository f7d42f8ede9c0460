"""The Transformer's mutants (spec/nn.py): its modules and functions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

import impl as reference
from tests.kit.mutants.common import Mutant


class LinearFanInStd(reference.Linear):
    def __init__(self, in_features, out_features, device=None, dtype=None):
        super().__init__(in_features, out_features, device=device, dtype=dtype)
        std = 1 / math.sqrt(in_features)
        nn.init.trunc_normal_(self.weight, std=std, a=-3 * std, b=3 * std)


class LinearUntruncated(reference.Linear):
    def __init__(self, in_features, out_features, device=None, dtype=None):
        super().__init__(in_features, out_features, device=device, dtype=dtype)
        nn.init.normal_(self.weight, std=math.sqrt(2 / (in_features + out_features)))


class LinearTransposed(nn.Module):
    """Stores Wᵀ (d_in, d_out) and computes x W: same function, wrong layout for the course's weights."""

    def __init__(self, in_features, out_features, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(reference.Linear(in_features, out_features, device, dtype).weight.detach().T.clone())

    def forward(self, x):
        return x @ self.weight


class EmbeddingSmallStd(reference.Embedding):
    def __init__(self, num_embeddings, embedding_dim, device=None, dtype=None):
        super().__init__(num_embeddings, embedding_dim, device=device, dtype=dtype)
        nn.init.trunc_normal_(self.weight, std=0.02, a=-0.06, b=0.06)


class EmbeddingUnchecked(reference.Embedding):
    def forward(self, token_ids):
        return self.weight[token_ids]  # -1 silently wraps around to the last row


class RMSNormInputDtype(reference.RMSNorm):
    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


class RMSNormEpsOutsideSqrt(reference.RMSNorm):
    def forward(self, x):
        x32 = x.float()
        rms = x32.pow(2).mean(dim=-1, keepdim=True).sqrt()
        return (x32 / (rms + self.eps) * self.weight.float()).to(x.dtype)


class RMSNormEps1e6(reference.RMSNorm):
    def __init__(self, d_model, eps=1e-6, device=None, dtype=None):
        super().__init__(d_model, eps=eps, device=device, dtype=dtype)


def _silu_gelu_approx(x: Tensor) -> Tensor:
    return x * torch.sigmoid(1.702 * x)


class SwiGLUGateSwapped(reference.SwiGLU):
    def forward(self, x):
        return self.w2(reference.silu(self.w3(x)) * self.w1(x))


class RoPEHalfSplit(reference.RotaryEmbedding):
    def forward(self, x, token_positions):
        cos, sin = self.cos[token_positions], self.sin[token_positions]
        first, second = x.float().chunk(2, dim=-1)  # pairs (x_k, x_{k+d/2}) as in GPT-NeoX / HF Llama
        return torch.cat((first * cos - second * sin, first * sin + second * cos), dim=-1).to(x.dtype)


class RoPEKFromOne(reference.RotaryEmbedding):
    def __init__(self, theta, d_k, max_seq_len, device=None):
        super().__init__(theta, d_k, max_seq_len, device=device)
        inv_freq = theta ** (-torch.arange(2, d_k + 1, 2, device=device, dtype=torch.float64) / d_k)  # k = 1 … d/2
        angles = torch.arange(max_seq_len, device=device, dtype=torch.float64)[:, None] * inv_freq
        self.cos, self.sin = angles.cos().float(), angles.sin().float()


def _softmax_unshifted(x: Tensor, dim: int) -> Tensor:
    exp = torch.exp(x)
    return exp / exp.sum(dim=dim, keepdim=True)


def _softmax_last_dim(x: Tensor, dim: int) -> Tensor:
    return reference.softmax(x, dim=-1)


def _sdpa_mask_inverted(Q, K, V, mask=None):
    return reference.scaled_dot_product_attention(Q, K, V, None if mask is None else ~mask)


def _sdpa_scaled_by_d_k(Q, K, V, mask=None):
    # softmax(QKᵀ/d_k) instead of /√d_k: feed Q/√d_k to the reference.
    return reference.scaled_dot_product_attention(Q / math.sqrt(Q.shape[-1]), K, V, mask)


class MHSAVariant(reference.MultiHeadSelfAttention):
    """The reference forward with knobs; each mutant below turns exactly one."""

    causal_diagonal = 0  # tril(diagonal): 0 is key j ≤ query i
    heads_last = False  # unflatten the projections to (d_k, h) instead of (h, d_k)
    rope_on_v = False
    ignore_positions = False

    def forward(self, x, token_positions=None):
        seq = x.shape[-2]
        q, k, v = (self.split_heads(proj(x)) for proj in (self.q_proj, self.k_proj, self.v_proj))
        if self.rope is not None:
            if token_positions is None or self.ignore_positions:
                token_positions = torch.arange(seq, device=x.device)
            positions = token_positions.unsqueeze(-2)
            q, k = self.rope(q, positions), self.rope(k, positions)
            if self.rope_on_v:
                v = self.rope(v, positions)
        causal = torch.ones(seq, seq, dtype=torch.bool, device=x.device).tril(self.causal_diagonal)
        heads = reference.scaled_dot_product_attention(q, k, v, causal)  # (..., h, seq, d_k)
        return self.output_proj(heads.transpose(-3, -2).flatten(-2))

    def split_heads(self, y):
        if self.heads_last:
            return y.unflatten(-1, (self.d_head, self.num_heads)).transpose(-1, -2).transpose(-3, -2)
        return y.unflatten(-1, (self.num_heads, self.d_head)).transpose(-3, -2)  # (..., h, seq, d_k)


class MHSAStrictlyCausal(MHSAVariant):
    causal_diagonal = -1  # key j < query i: a token never sees itself


class MHSAPeeksOneAhead(MHSAVariant):
    causal_diagonal = 1  # key j ≤ query i + 1


class MHSAHeadsLast(MHSAVariant):
    heads_last = True


class MHSARoPEOnValues(MHSAVariant):
    rope_on_v = True


class MHSAIgnoresPositions(MHSAVariant):
    ignore_positions = True


class BlockAlwaysPostNorm(reference.TransformerBlock):
    def forward(self, x, token_positions=None):
        if self.norm != "pre":
            return super().forward(x, token_positions)
        z = self.ln1(x + self.attn(x, token_positions))
        return self.ln2(z + self.ffn(z))


class BlockOneNorm(reference.TransformerBlock):
    def forward(self, x, token_positions=None):
        if self.norm != "pre":
            return super().forward(x, token_positions)
        z = x + self.attn(self.ln1(x), token_positions)
        return z + self.ffn(self.ln1(z))  # ln1 twice; ln2 never used


class LMNoFinalNorm(reference.TransformerLM):
    def forward(self, token_ids):
        x = self.token_embeddings(token_ids)
        positions = torch.arange(token_ids.shape[-1], device=token_ids.device)
        for layer in self.layers:
            x = layer(x, positions)
        return self.lm_head(x)


class LMLogProbs(reference.TransformerLM):
    def forward(self, token_ids):
        return torch.log_softmax(super().forward(token_ids), dim=-1)



# The A3 training API's model options (num_kv_heads, head_dim, tie_embeddings, norm_eps): each mutant breaks one, and is the
# reference otherwise (without the option it computes what the reference does).


class MHSAKVHeadsTiled(reference.MultiHeadSelfAttention):
    def share_kv_heads(self, kv):
        groups = self.num_heads // self.num_kv_heads
        return kv.repeat(*[1] * (kv.dim() - 3), groups, 1, 1)  # heads 0, 1, …, 0, 1, …: query head h gets h mod h_kv


class LMKVHeadsTiled(reference.TransformerLM):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for layer in self.layers:
            layer.attn.__class__ = MHSAKVHeadsTiled  # the same module, one method changed


def _attention_scaled_by_default_d_k(d_k: int):
    """Causal attention scaled by 1/√d_k, d_k = d_model / num_heads, whatever the heads' width."""
    def attention(q, k, v, is_causal=True):
        causal = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        return reference.scaled_dot_product_attention(q * math.sqrt(q.shape[-1] / d_k), k, v, causal)
    return attention


class LMScaleIgnoresHeadDim(reference.TransformerLM):
    def __init__(self, vocab_size, context_length, d_model, num_layers, num_heads, *args, **kwargs):
        super().__init__(vocab_size, context_length, d_model, num_layers, num_heads, *args, **kwargs)
        for layer in self.layers:
            layer.attn.attention_kernel = _attention_scaled_by_default_d_k(d_model // num_heads)


class LMOutputProjIgnoresHeadDim(reference.TransformerLM):
    def __init__(self, vocab_size, context_length, d_model, num_layers, num_heads, *args, dtype=None, device=None,
                 **kwargs):
        super().__init__(vocab_size, context_length, d_model, num_layers, num_heads, *args, device=device, dtype=dtype,
                         **kwargs)
        for layer in self.layers:
            layer.attn.output_proj = reference.Linear(d_model, d_model, device=device, dtype=dtype)  # not h·head_dim


class LMTiedWithEmbeddingInit(reference.TransformerLM):
    def __init__(self, *args, tie_embeddings=False, **kwargs):
        super().__init__(*args, tie_embeddings=tie_embeddings, **kwargs)
        if tie_embeddings:  # the shared matrix drawn as an embedding: first logits of std √d_model
            nn.init.trunc_normal_(self.token_embeddings.weight, mean=0.0, std=1.0, a=-3.0, b=3.0)


class LMTiedByCopy(reference.TransformerLM):
    def __init__(self, *args, tie_embeddings=False, **kwargs):
        super().__init__(*args, tie_embeddings=tie_embeddings, **kwargs)
        if tie_embeddings:  # equal at the start, then two Parameters that drift apart
            self.lm_head.weight = nn.Parameter(self.token_embeddings.weight.detach().clone())


class LMFinalNormIgnoresEps(reference.TransformerLM):
    def __init__(self, *args, norm_eps=1e-5, **kwargs):
        super().__init__(*args, norm_eps=norm_eps, **kwargs)
        if hasattr(self, "ln_final"):
            self.ln_final.eps = 1e-5  # the blocks' norms take norm_eps, the final one keeps RMSNorm's default


MUTANTS: list[Mutant] = [
    # strict, the three init mutants: the handout's initializations are "approximate", never seen by the course's tests
    Mutant("linear_fan_in_std", "Linear", "init std 1/√d_in instead of √(2/(d_in+d_out))", LinearFanInStd,
           level="strict"),
    Mutant("linear_untruncated", "Linear", "init N(0, σ²) not truncated at ±3σ", LinearUntruncated, level="strict"),
    Mutant("linear_transposed", "Linear", "weight stored (d_in, d_out), y = x W", LinearTransposed),
    Mutant("embedding_std_002", "Embedding", "init std 0.02 (GPT-2's) instead of 1", EmbeddingSmallStd, level="strict"),
    # strict: negative and out-of-range ids rejected is the kit's convention
    Mutant("embedding_unchecked", "Embedding", "out-of-range ids not rejected (−1 wraps around)", EmbeddingUnchecked, level="strict"),
    Mutant("rmsnorm_no_fp32", "RMSNorm", "computed in the input dtype: fp16 x² overflows", RMSNormInputDtype),
    Mutant("rmsnorm_eps_outside_sqrt", "RMSNorm", "x / (√mean(x²) + eps) instead of x / √(mean(x²) + eps)",
           RMSNormEpsOutsideSqrt),
    Mutant("rmsnorm_eps_1e6", "RMSNorm", "default eps 1e-6 instead of 1e-5", RMSNormEps1e6),
    Mutant("silu_gelu_approx", "silu", "x·σ(1.702x), the GELU approximation, instead of x·σ(x)", _silu_gelu_approx),
    Mutant("swiglu_gate_swapped", "SwiGLU", "W2(SiLU(W3 x) ⊙ W1 x): w1 and w3 swap roles", SwiGLUGateSwapped),
    Mutant("rope_half_split", "RotaryEmbedding", "rotates (x_k, x_{k+d/2}) instead of adjacent pairs",
           RoPEHalfSplit),
    Mutant("rope_k_from_1", "RotaryEmbedding", "angle pos·θ^(−2k/d) with k = 1 … d/2 (the literal handout)",
           RoPEKFromOne),
    Mutant("softmax_unshifted", "softmax", "exp(x) without subtracting the max: inf/NaN on large inputs",
           _softmax_unshifted),
    Mutant("softmax_last_dim", "softmax", "always normalizes the last dim, ignoring ``dim``", _softmax_last_dim),
    Mutant("sdpa_mask_inverted", "scaled_dot_product_attention", "True = masked out instead of True = attend",
           _sdpa_mask_inverted),
    Mutant("sdpa_scaled_by_d_k", "scaled_dot_product_attention", "scores QKᵀ/d_k instead of QKᵀ/√d_k",
           _sdpa_scaled_by_d_k),
    Mutant("mhsa_strictly_causal", "MultiHeadSelfAttention", "causal mask key j < i: no token sees itself",
           MHSAStrictlyCausal),
    Mutant("mhsa_peeks_one_ahead", "MultiHeadSelfAttention", "causal mask key j ≤ i + 1: reads the next token",
           MHSAPeeksOneAhead),
    Mutant("mhsa_heads_last", "MultiHeadSelfAttention", "projection split as (d_k, h): rows not grouped by head",
           MHSAHeadsLast),
    Mutant("mhsa_rope_on_values", "MultiHeadSelfAttention", "RoPE applied to V as well as Q and K",
           MHSARoPEOnValues),
    Mutant("mhsa_ignores_positions", "MultiHeadSelfAttention", "token_positions ignored: always 0 … seq − 1",
           MHSAIgnoresPositions),
    Mutant("block_post_norm", "TransformerBlock", "post-norm when pre-norm is asked", BlockAlwaysPostNorm),
    Mutant("block_one_norm", "TransformerBlock", "ln1 used before both sublayers; ln2 unused", BlockOneNorm),
    Mutant("lm_no_final_norm", "TransformerLM", "ln_final skipped before the LM head", LMNoFinalNorm),
    Mutant("lm_log_probs", "TransformerLM", "returns log-softmax instead of unnormalized logits", LMLogProbs),
    # strict, the model options: the course's TransformerLM has none of them
    Mutant("lm_kv_heads_tiled", "TransformerLM", "GQA's key/value heads repeated as a tile (h mod h_kv), not "
           "repeat_interleave", LMKVHeadsTiled, level="strict"),
    Mutant("lm_scale_ignores_head_dim", "TransformerLM", "scores scaled by 1/√(d_model/num_heads), not 1/√head_dim",
           LMScaleIgnoresHeadDim, level="strict"),
    Mutant("lm_output_proj_ignores_head_dim", "TransformerLM", "output_proj d_model → d_model, not num_heads·head_dim "
           "→ d_model", LMOutputProjIgnoresHeadDim, level="strict"),
    Mutant("lm_tied_by_copy", "TransformerLM", "tie_embeddings copies the embedding into the head: two Parameters",
           LMTiedByCopy, level="strict"),
    Mutant("lm_tied_embedding_init", "TransformerLM", "the tied matrix initialized N(0, 1) as an embedding, not as the "
           "LM head", LMTiedWithEmbeddingInit, level="strict"),
    Mutant("lm_final_norm_ignores_eps", "TransformerLM", "norm_eps reaches ln1 and ln2 but not ln_final",
           LMFinalNormIgnoresEps, level="strict"),
]
