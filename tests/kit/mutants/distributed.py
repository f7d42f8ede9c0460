"""Mutants: the reference with one component subtly broken. The conformance suite must reject each.

Every mutant replaces exactly one spec component with a variant that subclasses or wraps the
reference and changes one thing: a mistake someone building the course's system could make.
The table ``MUTANTS`` lists them; ``tests/kit/test_mutants.py`` runs the conformance suite on
each one, restricted to its component, and counts how many the suite rejects.

Each mutant is also an implementation the suite can be pointed at by hand::

    python -m pytest tests/conformance --impl tests.kit.mutants:rope_half_split --component RotaryEmbedding

Mutants that are deliberately absent because no test can or should see them:
- RoPE positions counted from 1 in the LM: RoPE is relative, so a constant shift of every
  position leaves attention unchanged; it is not a behavioural bug.
- clip with ``>=`` instead of ``>``: differs only when the norm equals M to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import regex
import torch
from torch import Tensor, nn

import impl as reference
import impl.bpe_training as reference_training
import impl.rmsnorm_triton as reference_rmsnorm
import impl.flash_triton as reference_flash_triton
import impl.ddp as reference_ddp
import impl.fsdp as reference_fsdp
import spec.tokenizer
from impl.flash_attention import check_inputs as check_flash_inputs  # impl.flash_attention is also a function
from spec import COMPONENTS, Implementation

__all__ = ["MUTANTS", "Mutant", "bundle"]


@dataclass(frozen=True)
class Mutant:
    name: str  # a Python identifier: ``--impl tests.kit.mutants:<name>``
    component: str  # the spec component it breaks (and the only one)
    description: str  # what is wrong, in the spec's terms
    broken: Any  # replaces the reference's member for ``component``

    def implementation(self) -> Implementation:
        """The reference's members, with ``component`` replaced by the broken variant."""
        members = {name: getattr(reference, name) for name in COMPONENTS}
        members[self.component] = self.broken
        return Implementation(name=f"mutant {self.name}", version=reference.__version__, members=members)


# ========================================================================================= tokenizer
#
# The reference's internals change as it is optimized, so the tokenizer mutants use only what the
# spec pins: the constructors' arguments, the public methods and GPT2_PATTERN. (A mutant that
# crashed on a renamed internal would fail tests and pass for rejected; test_mutants.py also checks
# that each one runs and behaves differently from the reference.) The training mutants do swap one
# piece of impl/bpe_training.py for the call (mock.patch.object, which raises if the piece is gone).

GPT2_PRETOKEN = regex.compile(spec.tokenizer.GPT2_PATTERN)
PATTERN_WITHOUT_CONTRACTIONS = regex.compile(spec.tokenizer.GPT2_PATTERN.removeprefix("'(?:[sdmt]|ll|ve|re)|"))
PATTERN_WITHOUT_LOOKAHEAD = regex.compile(spec.tokenizer.GPT2_PATTERN.replace(r"|\s+(?!\S)|", "|"))
assert GPT2_PRETOKEN.pattern != PATTERN_WITHOUT_CONTRACTIONS.pattern != PATTERN_WITHOUT_LOOKAHEAD.pattern


class Smaller(reference_training.Greater):
    """The heap key reversed: among equal counts the lexicographically *smaller* pair pops first."""

    def __lt__(self, other):
        return self.pair < other.pair


def _train_bpe_smaller_tie_break(input_path, vocab_size, special_tokens):
    with mock.patch.object(reference_training, "Greater", Smaller):
        return reference.train_bpe(input_path, vocab_size, special_tokens)


def _train_bpe_specials_as_text(input_path, vocab_size, special_tokens):
    specials = list(dict.fromkeys(special_tokens))  # not split out: pre-tokenized, counted, merged like text
    vocab, merges = reference.train_bpe(input_path, vocab_size - len(specials), [])
    return vocab | {len(vocab) + k: s.encode("utf-8") for k, s in enumerate(specials)}, merges


def _train_bpe_specials_counted(input_path, vocab_size, special_tokens):
    count = reference_training.count_pretokens  # split out, but each occurrence also counted as a word

    def count_with_specials(path, specials, *args, **kwargs):
        counts = count(path, specials, *args, **kwargs)
        text = Path(path).read_text(encoding="utf-8")
        counts.update({s: text.count(s) for s in specials if s in text})
        return counts

    with mock.patch.object(reference_training, "count_pretokens", count_with_specials):
        return reference.train_bpe(input_path, vocab_size, special_tokens)


def _train_bpe_one_merge_too_many(input_path, vocab_size, special_tokens):
    return reference.train_bpe(input_path, vocab_size + 1, special_tokens)  # vocab_size − 255 − #specials merges


def _train_bpe_no_contractions(input_path, vocab_size, special_tokens):
    with mock.patch.object(reference_training, "PRETOKEN", PATTERN_WITHOUT_CONTRACTIONS):
        return reference.train_bpe(input_path, vocab_size, special_tokens)


class TokenizerVariant(reference.Tokenizer):
    """``encode`` written out plainly from the spec, with knobs; each mutant below turns exactly one.
    ``decode`` and ``encode_iterable`` stay the reference's."""

    shortest_special_first = False
    pattern = GPT2_PRETOKEN
    leftmost_merge = False  # merge the leftmost mergeable pair instead of the pair of lowest rank

    def __init__(self, vocab, merges, special_tokens=None):
        super().__init__(vocab, merges, special_tokens)
        self.rank: dict[tuple[bytes, bytes], int] = {}
        for rank, pair in enumerate(merges):
            self.rank.setdefault(pair, rank)
        self.id_of_token = {token: i for i, token in vocab.items()}
        specials = sorted(set(special_tokens or []), key=len, reverse=not self.shortest_special_first)
        self.special_re = regex.compile("|".join(map(regex.escape, specials))) if specials else None
        self.special_id = {s: reference.Tokenizer.encode(self, s)[0] for s in specials}
        self.memo: dict[str, list[int]] = {}

    def encode(self, text):
        ids, start = [], 0
        for match in self.special_re.finditer(text) if self.special_re else ():
            ids += self.encode_text(text[start:match.start()]) + [self.special_id[match.group()]]
            start = match.end()
        return ids + self.encode_text(text[start:])

    def encode_text(self, text):
        return [i for pretoken in self.pattern.findall(text) for i in self.bpe(pretoken)]

    def bpe(self, pretoken):
        if pretoken not in self.memo:
            parts = [bytes([b]) for b in pretoken.encode("utf-8")]
            while ranked := [(self.rank[p], i) for i, p in enumerate(zip(parts, parts[1:])) if p in self.rank]:
                if self.leftmost_merge:
                    i = ranked[0][1]
                    parts[i:i + 2] = [parts[i] + parts[i + 1]]
                    continue
                pair, merged, i = parts[min(ranked)[1]:min(ranked)[1] + 2], [], 0
                while i < len(parts):  # every occurrence of the best pair, left to right
                    if parts[i:i + 2] == pair:
                        merged.append(pair[0] + pair[1])
                        i += 2
                    else:
                        merged.append(parts[i])
                        i += 1
                parts = merged
            self.memo[pretoken] = [self.id_of_token[p] for p in parts]
        return self.memo[pretoken]


class TokenizerShortestSpecialFirst(TokenizerVariant):
    shortest_special_first = True  # <|a|> matched before <|a|><|a|>: the longer one never matches


class TokenizerLeftmostMerge(TokenizerVariant):
    leftmost_merge = True


class TokenizerNoContractions(TokenizerVariant):
    pattern = PATTERN_WITHOUT_CONTRACTIONS  # "don't" -> "don", "'", "t" instead of "don", "'t"


class TokenizerNoLookahead(TokenizerVariant):
    pattern = PATTERN_WITHOUT_LOOKAHEAD  # "a  b" -> "a", "  ", "b" instead of "a", " ", " b"


class TokenizerStrictDecode(reference.Tokenizer):
    def __init__(self, vocab, merges, special_tokens=None):
        super().__init__(vocab, merges, special_tokens)
        self.token_of = dict(vocab) | {reference.Tokenizer.encode(self, s)[0]: s.encode()
                                       for s in special_tokens or []}

    def decode(self, ids):
        ids = list(ids)
        super().decode(ids)  # the reference's checks of the ids
        return b"".join(self.token_of[i] for i in ids).decode("utf-8")  # errors="strict": raises on partial UTF-8


class TokenizerChunksEncodedAlone(reference.Tokenizer):
    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        for chunk in iterable:
            yield from self.encode(chunk)


class TokenizerEagerIterable(reference.Tokenizer):
    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        return iter(self.encode("".join(iterable)))  # right ids, but the whole input in memory at once


class TokenizerDropsTrailingWhitespace(reference.Tokenizer):
    def encode(self, text):
        return super().encode(text.rstrip())


class TokenizerUnregisteredSpecial(reference.Tokenizer):
    """``<|endoftext|>`` split out whenever the vocabulary has it, registered or not."""

    def __init__(self, vocab, merges, special_tokens=None):
        super().__init__(vocab, merges, special_tokens)
        self.registered = "<|endoftext|>" in (special_tokens or [])
        self.eot = next((i for i, token in vocab.items() if token == b"<|endoftext|>"), None)

    def encode(self, text):
        if self.registered or self.eot is None:
            return super().encode(text)
        parts = [reference.Tokenizer.encode(self, part) for part in text.split("<|endoftext|>")]
        return [i for k, part in enumerate(parts) for i in [self.eot] * (k > 0) + part]


# ================================================================================================ nn


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


# ============================================================================================= train


def _cross_entropy_summed(logits, targets):
    return reference.cross_entropy(logits, targets) * targets.numel()


def _cross_entropy_unshifted(logits, targets):
    logits = logits.float()
    log_normalizer = torch.log(torch.exp(logits).sum(dim=-1))
    return (log_normalizer - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)).mean()


class AdamWVariant(reference.AdamW):
    """The reference step with knobs; each mutant below turns exactly one."""

    l2 = False  # add λθ to the gradient (Adam + L2) instead of decoupled decay
    bias_correction = True
    decay_with_lr_t = False  # θ −= α_t λ θ instead of the base α
    decay_first = False  # PyTorch's order: decay, then the Adam step
    eps_inside_sqrt = False  # √(v + ε) instead of √v + ε
    state_outside = False  # m, v, t kept in self.hidden: state_dict() misses them

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hidden: dict = {}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.hidden.setdefault(p, {}) if self.state_outside else self.state[p]
                if not state:
                    state.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["t"] += 1
                t, m, v = state["t"], state["m"], state["v"]
                g = p.grad + decay * p if self.l2 else p.grad
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                lr_t = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t) if self.bias_correction else lr
                if self.decay_first:
                    p.mul_(1 - lr * decay)
                denominator = (v + eps).sqrt() if self.eps_inside_sqrt else v.sqrt() + eps
                p.addcdiv_(m, denominator, value=-lr_t)
                if not (self.l2 or self.decay_first):
                    p.mul_(1 - (lr_t if self.decay_with_lr_t else lr) * decay)
        return loss


class AdamWWithL2(AdamWVariant):
    l2 = True


class AdamWNoBiasCorrection(AdamWVariant):
    bias_correction = False


class AdamWDecayWithLrT(AdamWVariant):
    decay_with_lr_t = True


class AdamWDecayFirst(AdamWVariant):
    decay_first = True


class AdamWEpsInsideSqrt(AdamWVariant):
    eps_inside_sqrt = True


class AdamWStateOutside(AdamWVariant):
    state_outside = True


def _schedule_no_floor(t, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters):
    if t <= cosine_cycle_iters or cosine_cycle_iters == warmup_iters:
        return reference.lr_cosine_schedule(t, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters)
    progress = (t - warmup_iters) / (cosine_cycle_iters - warmup_iters)  # > 1: the cosine climbs back up
    return min_learning_rate + 0.5 * (1 + math.cos(math.pi * progress)) * (max_learning_rate - min_learning_rate)


def _schedule_warmup_off_by_one(t, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters):
    if t < warmup_iters:
        return (t + 1) / warmup_iters * max_learning_rate  # reaches α_max one step early
    return reference.lr_cosine_schedule(t, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters)


def _grads(parameters):
    return [p.grad for p in parameters if p.grad is not None]


def _clip_without_eps(parameters, max_l2_norm):
    grads = _grads(parameters)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if norm > max_l2_norm:
        for g in grads:
            g.mul_(max_l2_norm / norm)  # M / norm, not M / (norm + 1e-6)


def _clip_per_tensor(parameters, max_l2_norm):
    for p in parameters:
        reference.clip_gradients([p], max_l2_norm)


def _clip_always(parameters, max_l2_norm):
    grads = _grads(parameters)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    for g in grads:
        g.mul_(max_l2_norm / (norm + 1e-6))  # rescales small gradients up as well


def _get_batch_no_last_start(dataset, batch_size, context_length, device, rng=None):
    return reference.get_batch(dataset[:-1], batch_size, context_length, device, rng)  # starts 0 … n − m − 2


def _get_batch_unshifted(dataset, batch_size, context_length, device, rng=None):
    x, _ = reference.get_batch(dataset, batch_size, context_length, device, rng)
    return x, x.clone()


def _get_batch_int32(dataset, batch_size, context_length, device, rng=None):
    x, y = reference.get_batch(dataset, batch_size, context_length, device, rng)
    return x.int(), y.int()


class _EmptyOptimizerState:
    def __init__(self, optimizer):
        self.param_groups = optimizer.state_dict()["param_groups"]

    def state_dict(self):
        return {"state": {}, "param_groups": self.param_groups}


def _save_checkpoint_without_optimizer_state(model, optimizer, iteration, out):
    reference.save_checkpoint(model, _EmptyOptimizerState(optimizer), iteration, out)  # hyperparameters only


def _load_checkpoint_iteration_zero(src, model, optimizer):
    reference.load_checkpoint(src, model, optimizer)
    return 0


def _load_checkpoint_model_only(src, model, optimizer):
    checkpoint = torch.load(src, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    return checkpoint["iteration"]


# ============================================================================================ decode


def _sample_variant(logits, temperature, top_p, generator=None, *, multiply=False, strict=False, tail_floor=0.0,
                    filter_untempered=False, ties_to_higher_id=False, input_dtype=False):
    """sample_next_token written out plainly from the spec, with knobs; each mutant below turns exactly one."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    v = logits if input_dtype else logits.float()
    if temperature == 0:
        return v.argmax(dim=-1)
    probs = reference.softmax(v * temperature if multiply else v / temperature, dim=-1)
    if top_p < 1:
        ranked = reference.softmax(v, dim=-1) if filter_untempered else probs  # V(p) chosen on these
        if ties_to_higher_id:  # sort the reversed vocabulary: among equal probabilities the higher id comes first
            sorted_probs, reversed_order = torch.sort(ranked.flip(-1), dim=-1, descending=True, stable=True)
            order = ranked.shape[-1] - 1 - reversed_order
        else:
            sorted_probs, order = torch.sort(ranked, dim=-1, descending=True, stable=True)
        total = sorted_probs.cumsum(dim=-1)
        before = torch.cat([torch.zeros_like(total[..., :1]), total[..., :-1]], dim=-1)
        keep_sorted = before < top_p
        if strict:  # only tokens whose running total stays below p, and the top one
            keep_sorted = total < top_p
            keep_sorted[..., 0] = True
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = torch.where(keep, probs, tail_floor * probs)
    rows = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(rows, num_samples=1, generator=generator).reshape(probs.shape[:-1])


@torch.no_grad()
def _decode_variant(model, prompt, max_new_tokens, temperature=1.0, top_p=1.0, end_of_text_id=None, generator=None,
                    *, stop_at_end=True, keep_end=True, first_window=False, first_position=False, with_prompt=False,
                    eval_mode=True, restore=True):
    """decode written out plainly from the spec, with knobs; each mutant below turns exactly one."""
    if prompt.dim() != 1 or prompt.numel() == 0:
        raise ValueError(f"prompt must be a non-empty 1-D tensor, got shape {tuple(prompt.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    was_training = model.training
    if eval_mode:
        model.eval()
    try:
        ids = prompt.long()
        for _ in range(max_new_tokens):
            window = ids[:model.context_length] if first_window else ids[-model.context_length:]
            logits = model(window.unsqueeze(0))[0, 0 if first_position else -1]
            next_id = reference.sample_next_token(logits, temperature, top_p, generator).reshape(1)
            if end_of_text_id is not None and int(next_id) == end_of_text_id and stop_at_end:
                if keep_end:
                    ids = torch.cat([ids, next_id])
                break
            ids = torch.cat([ids, next_id])
        return ids if with_prompt else ids[len(prompt):]
    finally:
        if restore:
            model.train(was_training)


_sample_temperature_multiplies = partial(_sample_variant, multiply=True)
_sample_top_p_excludes_crossing_token = partial(_sample_variant, strict=True)
_sample_top_p_tail_floor = partial(_sample_variant, tail_floor=0.02)
_sample_top_p_before_temperature = partial(_sample_variant, filter_untempered=True)
_sample_ties_to_higher_id = partial(_sample_variant, ties_to_higher_id=True)
_sample_in_input_dtype = partial(_sample_variant, input_dtype=True)
_decode_ignores_end_of_text = partial(_decode_variant, stop_at_end=False)
_decode_drops_end_of_text = partial(_decode_variant, keep_end=False)
_decode_first_window = partial(_decode_variant, first_window=True)
_decode_first_position_logits = partial(_decode_variant, first_position=True)
_decode_returns_prompt = partial(_decode_variant, with_prompt=True)
_decode_in_train_mode = partial(_decode_variant, eval_mode=False)
_decode_leaves_eval_mode = partial(_decode_variant, restore=False)


# =========================================================================================== kernels
#
# RMSNormTriton mutants keep the reference's input checks and, like a fused kernel, save only x and the
# gain for the backward (which recomputes), so that each one is rejected by the test of the clause it
# breaks, not by the saved-tensor or bad-input tests. Python-level: the math that is wrong is written
# in torch; the rest is the reference's Triton kernel.


class _RecomputedRMSNorm(torch.autograd.Function):
    """y = forward_fn(x, g, eps), saving x and g only; the backward is backward_fn(x, g, eps, dy) -> (dx, dg)."""

    @staticmethod
    def forward(ctx, x, weight, eps, forward_fn, backward_fn):
        ctx.save_for_backward(x, weight)
        ctx.eps, ctx.backward_fn = eps, backward_fn
        return forward_fn(x, weight, eps)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        dx, dw = ctx.backward_fn(x, weight, ctx.eps, dy)
        return dx, dw, None, None, None


def _autograd_grads(forward_fn, x, weight, eps, dy):
    """(dx, dg) of forward_fn by autograd, recomputed from x and g."""
    with torch.enable_grad():
        x, weight = x.detach().requires_grad_(True), weight.detach().requires_grad_(True)
        return torch.autograd.grad(forward_fn(x, weight, eps), (x, weight), dy)


def _rmsnorm_eps_outside_sqrt(x, weight, eps):
    x32 = x.float()
    return (x32 / (x32.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight.float()).to(x.dtype)


def _rmsnorm_in_input_dtype(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.to(x.dtype)


def _rmsnorm_mean_over_padded_width(x, weight, eps):
    padded = 1 << (x.shape[-1] - 1).bit_length()  # the kernel's power-of-two block, masked lanes counted
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).sum(-1, keepdim=True) / padded + eps) * weight.float()).to(x.dtype)


def _gain_grad_first_row(x, weight, eps, dy):
    dx, _ = _autograd_grads(reference_rmsnorm.rmsnorm, x, weight, eps, dy)
    d = x.shape[-1]  # dg from the first row alone: the per-row terms never summed
    _, dw = _autograd_grads(reference_rmsnorm.rmsnorm, x.reshape(-1, d)[:1], weight, eps, dy.reshape(-1, d)[:1])
    return dx, dw


def _rstd_held_constant(x, weight, eps, dy):
    _, dw = _autograd_grads(reference_rmsnorm.rmsnorm, x, weight, eps, dy)
    rstd = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)  # dx = dy·g/rms: no term through mean(x²)
    return (dy.float() * weight.float() * rstd).to(x.dtype), dw


class RMSNormTritonVariant(reference.RMSNormTriton):
    """The reference's checks, then ``forward_fn`` and ``backward_fn``; each mutant below swaps exactly one."""

    forward_fn = staticmethod(reference_rmsnorm.rmsnorm)
    backward_fn = staticmethod(partial(_autograd_grads, reference_rmsnorm.rmsnorm))

    def forward(self, x):
        x, weight = reference_rmsnorm.checked_inputs(x, self.weight)
        return _RecomputedRMSNorm.apply(x, weight, self.eps, self.forward_fn, self.backward_fn)


def _grads_of(forward_fn):
    return staticmethod(partial(_autograd_grads, forward_fn))


class RMSNormTritonEpsOutsideSqrt(RMSNormTritonVariant):
    forward_fn, backward_fn = staticmethod(_rmsnorm_eps_outside_sqrt), _grads_of(_rmsnorm_eps_outside_sqrt)


class RMSNormTritonInputDtype(RMSNormTritonVariant):
    forward_fn, backward_fn = staticmethod(_rmsnorm_in_input_dtype), _grads_of(_rmsnorm_in_input_dtype)


class RMSNormTritonPaddedMean(RMSNormTritonVariant):
    forward_fn, backward_fn = staticmethod(_rmsnorm_mean_over_padded_width), _grads_of(_rmsnorm_mean_over_padded_width)


class RMSNormTritonGainGradFirstRow(RMSNormTritonVariant):
    backward_fn = staticmethod(_gain_grad_first_row)


class RMSNormTritonRstdHeldConstant(RMSNormTritonVariant):
    backward_fn = staticmethod(_rstd_held_constant)



# FlashAttention-2 (spec/kernels.py). The PyTorch mutants are Algorithm 1 and its backward written out
# plainly (16 x 16 tiles) with knobs, each mutant turning exactly one; they keep the reference's input
# checks. The Triton mutants wrap the reference's kernels (impl/flash_triton.py flash_forward and
# flash_backward) and change what goes in, what is saved or what the backward is told.


def _flash_variant(name: str, *, scaled: bool = True, causal_offset: int = 0, lse_is_max: bool = False,
                   accumulate_dq: bool = True, accumulate_in_input_dtype: bool = False,
                   save_probabilities: bool = False) -> type[torch.autograd.Function]:
    """FlashAttention-2 in PyTorch with knobs. causal_offset: key j is masked where j > i + causal_offset."""
    tile = 16

    def scores(q, k, q0, k0, d, is_causal):
        s = q @ k.transpose(-1, -2) * (1 / math.sqrt(d) if scaled else 1.0)
        if is_causal:
            queries = torch.arange(q0, q0 + q.shape[-2], device=q.device)[:, None]
            keys = torch.arange(k0, k0 + k.shape[-2], device=q.device)[None, :]
            s = s + torch.where(keys > queries + causal_offset, -1e6, 0.0).to(s.dtype)
        return s

    def forward(ctx, Q, K, V, is_causal=False):
        check_flash_inputs(Q, K, V, "FlashAttentionPyTorch")
        acc = torch.float64 if Q.dtype == torch.float64 else torch.float32
        keep = Q.dtype if accumulate_in_input_dtype else acc  # the dtype o and l are held in between tiles
        d = Q.shape[-1]
        O = torch.empty_like(Q)
        L = torch.empty(Q.shape[:-1], dtype=acc, device=Q.device)
        for q0 in range(0, Q.shape[-2], tile):
            q = Q[..., q0:q0 + tile, :].to(acc)
            o = torch.zeros(q.shape, dtype=keep, device=Q.device)
            l = torch.zeros(q.shape[:-1], dtype=keep, device=Q.device)
            m = torch.full(q.shape[:-1], float("-inf"), dtype=acc, device=Q.device)
            for k0 in range(0, K.shape[-2], tile):
                s = scores(q, K[..., k0:k0 + tile, :].to(acc), q0, k0, d, is_causal)
                m_new = torch.maximum(m, s.amax(-1))
                p, alpha = torch.exp(s - m_new[..., None]), torch.exp(m - m_new)
                l = (alpha * l + p.sum(-1)).to(keep)
                o = (alpha[..., None] * o + p @ V[..., k0:k0 + tile, :].to(acc)).to(keep)
                m = m_new
            O[..., q0:q0 + tile, :] = (o / l[..., None]).to(Q.dtype)
            L[..., q0:q0 + tile] = m if lse_is_max else m + torch.log(l.to(acc))
        saved = (Q, K, V, O, L)
        if save_probabilities:  # P (B, N_q, N_k) kept for the backward instead of recomputed
            saved += (torch.exp(scores(Q.to(acc), K.to(acc), 0, 0, d, is_causal) - L[..., None]),)
        ctx.save_for_backward(*saved)
        ctx.is_causal = is_causal
        return O

    def backward(ctx, dO):
        Q, K, V, O, L, *P = ctx.saved_tensors
        acc, d = L.dtype, Q.shape[-1]
        scale = 1 / math.sqrt(d) if scaled else 1.0
        D = (dO.to(acc) * O.to(acc)).sum(-1)
        dQ = torch.zeros(Q.shape, dtype=acc, device=Q.device)
        dK, dV = torch.zeros(K.shape, dtype=acc, device=Q.device), torch.zeros(V.shape, dtype=acc, device=Q.device)
        for k0 in range(0, K.shape[-2], tile):
            k, v = K[..., k0:k0 + tile, :].to(acc), V[..., k0:k0 + tile, :].to(acc)
            for q0 in range(0, Q.shape[-2], tile):
                q, do = Q[..., q0:q0 + tile, :].to(acc), dO[..., q0:q0 + tile, :].to(acc)
                if P:
                    p = P[0][..., q0:q0 + tile, k0:k0 + tile]
                else:
                    p = torch.exp(scores(q, k, q0, k0, d, ctx.is_causal) - L[..., q0:q0 + tile, None])
                dV[..., k0:k0 + tile, :] += p.transpose(-1, -2) @ do
                ds = p * (do @ v.transpose(-1, -2) - D[..., q0:q0 + tile, None])
                if accumulate_dq:
                    dQ[..., q0:q0 + tile, :] += ds @ k * scale
                else:  # each key tile overwrites the last: only the last key tile's share survives
                    dQ[..., q0:q0 + tile, :] = ds @ k * scale
                dK[..., k0:k0 + tile, :] += ds.transpose(-1, -2) @ q * scale
        return dQ.to(Q.dtype), dK.to(K.dtype), dV.to(V.dtype), None

    return type(name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward),
                                                   "__module__": __name__})


FlashUnscaled = _flash_variant("FlashUnscaled", scaled=False)
FlashStrictlyCausal = _flash_variant("FlashStrictlyCausal", causal_offset=-1)
FlashPeeksOneAhead = _flash_variant("FlashPeeksOneAhead", causal_offset=1)
FlashLseIsMax = _flash_variant("FlashLseIsMax", lse_is_max=True)
FlashDqLastKeyTile = _flash_variant("FlashDqLastKeyTile", accumulate_dq=False)
FlashInputDtypeAccumulators = _flash_variant("FlashInputDtypeAccumulators", accumulate_in_input_dtype=True)
FlashSavesProbabilities = _flash_variant("FlashSavesProbabilities", save_probabilities=True)


def _triton_variant(name: str, *, q_factor=lambda d: 1.0, lse_factor: float = 1.0, backward_causal: bool | None = None,
                    cast_to_q_dtype: bool = False) -> type[torch.autograd.Function]:
    """The reference's Triton kernels, fed Q · q_factor(d), saving L · lse_factor, or told another causality."""

    def forward(ctx, Q, K, V, is_causal=False):
        if cast_to_q_dtype:  # mixed dtypes silently made to agree instead of rejected
            K, V = K.to(Q.dtype), V.to(Q.dtype)
        reference_flash_triton.check_triton_inputs(Q, K, V)
        O, L = reference_flash_triton.flash_forward(Q * q_factor(Q.shape[-1]), K, V, bool(is_causal))
        ctx.save_for_backward(Q, K, V, O, L * lse_factor)
        ctx.is_causal = bool(is_causal)
        return O

    def backward(ctx, dO):
        Q, K, V, O, L = ctx.saved_tensors
        factor = q_factor(Q.shape[-1])
        causal = ctx.is_causal if backward_causal is None else backward_causal
        dQ, dK, dV = reference_flash_triton.flash_backward(Q * factor, K, V, O, L / lse_factor, dO, causal)
        return dQ * factor, dK, dV, None

    return type(name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward),
                                                   "__module__": __name__})


FlashTritonUnscaled = _triton_variant("FlashTritonUnscaled", q_factor=math.sqrt)  # softmax(QKᵀ)V
FlashTritonLseInLog2 = _triton_variant("FlashTritonLseInLog2", lse_factor=1 / math.log(2))  # the kernel's log₂ units
FlashTritonBackwardNotCausal = _triton_variant("FlashTritonBackwardNotCausal", backward_causal=False)
FlashTritonCastsMixedDtypes = _triton_variant("FlashTritonCastsMixedDtypes", cast_to_q_dtype=True)


def _flash_attention_heads_as_positions(q, k, v, is_causal=False):
    # (..., h, N, d) read as (..., N, h, d): each position attends over the heads instead of the sequence.
    t = (x.transpose(-3, -2) for x in (q, k, v))
    return reference.flash_attention(*t, is_causal).transpose(-3, -2)


def _flash_attention_ignores_causal(q, k, v, is_causal=False):
    return reference.flash_attention(q, k, v, False)


# ======================================================================================= distributed
#
# DDP and sharded-optimizer mutants subclass the reference (impl/ddp.py, impl/sharded_optimizer.py) and
# override one method or swap one helper for the call. They run in the ranks' processes: the suite hands
# the mutant's label to each rank, which reloads it (tests/harness/multiprocess.py implementation).


class DDPSumWithoutAverage(reference.DDPIndividualParameters):
    def finish_gradient_synchronization(self):
        for _, work in self.pending:
            work.wait()  # the sum over ranks stays: N times the gradient of the global batch
        self.pending.clear()


class DDPNoBroadcast(reference.DDPIndividualParameters):
    def __init__(self, module):
        with mock.patch.object(reference_ddp, "broadcast_from_rank_0", lambda module: None):
            super().__init__(module)


class DDPAllReduceAfterBackward(reference.DDPIndividualParameters):
    """The naïve DDP of A2 §5.2: the hooks only note the parameter; everything is sent once backward is over."""

    def _all_reduce(self, parameter):
        self.pending.append((parameter, None))

    def finish_gradient_synchronization(self):
        self.pending = [(p, torch.distributed.all_reduce(p.grad, async_op=True)) for p, _ in self.pending]
        super().finish_gradient_synchronization()


class DDPFrozenGradients(reference.DDPIndividualParameters):
    """Frozen parameters get zero gradients, all-reduced with the others."""

    def finish_gradient_synchronization(self):
        for parameter in self.module.parameters():
            if not parameter.requires_grad:
                parameter.grad = torch.zeros_like(parameter)
                self.pending.append((parameter, torch.distributed.all_reduce(parameter.grad, async_op=True)))
        super().finish_gradient_synchronization()


class DDPTiedTwice(reference.DDPIndividualParameters):
    """Hooks on named_parameters(remove_duplicate=False): a tied weight all-reduced (and divided) twice, so its
    values come out right and only the traffic shows it."""

    def __init__(self, module):
        tied = lambda module: [p for _, p in module.named_parameters(remove_duplicate=False) if p.requires_grad]
        with mock.patch.object(reference_ddp, "trainable_parameters", tied):
            super().__init__(module)


class DDPUnchecked(reference.DDPIndividualParameters):
    def __init__(self, module):
        with mock.patch.object(reference_ddp, "check_same_parameters", lambda module: None):
            super().__init__(module)


class BucketedSumWithoutAverage(reference.DDPBucketed):
    def finish_gradient_synchronization(self):
        with mock.patch.object(self, "world_size", 1):
            super().finish_gradient_synchronization()


class BucketedFlushedEarly(reference.DDPBucketed):
    """A bucket is all-reduced when its last parameter in reverse order is ready, taken as "the bucket is full";
    readiness follows the graph, not the registration order."""

    def _gradient_ready(self, parameter):
        bucket = self.bucket_of[parameter]
        bucket.slice(parameter).copy_(parameter.grad)
        bucket.waiting -= 1
        if parameter is bucket.parameters[-1]:
            bucket.work = torch.distributed.all_reduce(bucket.buffer, async_op=True)


class BucketedForwardOrder(reference.DDPBucketed):
    def __init__(self, module, bucket_size_mb):
        assign = reference_ddp.assign_buckets
        forward = lambda parameters, size: assign(parameters[::-1], size)  # assign reverses them back
        with mock.patch.object(reference_ddp, "assign_buckets", forward):
            super().__init__(module, bucket_size_mb)


class BucketedOneBucket(reference.DDPBucketed):
    def __init__(self, module, bucket_size_mb):
        super().__init__(module, None)


class BucketedNotReset(reference.DDPBucketed):
    """The count of gradients still to come is not reset after a step: from the second backward on, no bucket
    ever fills up."""

    def finish_gradient_synchronization(self):
        super().finish_gradient_synchronization()
        for bucket in self.buckets:
            bucket.waiting = 0


class ShardedNoBroadcast(reference.ShardedOptimizer):
    def broadcast_parameters(self):
        pass  # each rank's shard moves; the others' stay behind


class ShardedReplicatedState(ShardedNoBroadcast):
    """Every rank steps every parameter: the same results, but the whole state on each rank."""

    def add_param_group(self, param_group):
        torch.optim.Optimizer.add_param_group(self, param_group)
        if self.local is None:
            self.local = self.optimizer_cls([dict(self.param_groups[-1])], **self.optimizer_kwargs)
            self.state = self.local.state
        else:
            self.local.add_param_group(dict(self.param_groups[-1]))


class ShardedLateGroupIgnored(reference.ShardedOptimizer):
    """A group added after construction is registered (owned by rank 0) but never reaches the local optimizer."""

    def __init__(self, params, optimizer_cls, **kwargs):
        super().__init__(params, optimizer_cls, **kwargs)
        self.constructed = True

    def add_param_group(self, param_group):
        if not getattr(self, "constructed", False):
            return super().add_param_group(param_group)
        torch.optim.Optimizer.add_param_group(self, param_group)
        for parameter in self.param_groups[-1]["params"]:
            self.owner[parameter] = 0
        self.local.add_param_group({**self.param_groups[-1], "params": []})


class ShardedStaleHyperparameters(reference.ShardedOptimizer):
    def sync_hyperparameters(self):
        pass  # param_groups changes (an LR schedule) never reach the local optimizer


class ShardedZeroGradOwnedOnly(reference.ShardedOptimizer):
    def zero_grad(self, set_to_none: bool = True):
        self.local.zero_grad(set_to_none)


# ============================================================================================== fsdp
#
# FSDP mutants subclass the reference (impl/fsdp.py) and override one method or patch one constant for the
# call; like the DDP ones they run in the ranks' processes.


class FSDPReplicatedSummed(reference.FSDP):
    def finish_gradient_synchronization(self):
        with mock.patch.object(self, "world_size", 1):  # the replicated gradients' sum is not divided
            super().finish_gradient_synchronization()


class FSDPReplicatedLocal(reference.FSDP):
    def finish_gradient_synchronization(self):
        pass  # replicated parameters keep each rank's own gradient: the replicas drift apart


class FSDPGradientSummed(reference.FSDP):
    def reduce_scatter(self, index, grad_full):
        return super().reduce_scatter(index, grad_full) * self.world_size


class FSDPWrongShard(reference.FSDP):
    """Rank r's shard gets the summed gradient rows of rank (r + 1) mod N (cut or zero-padded to its own size)."""

    def reduce_scatter(self, index, grad_full):
        # The all-reduce path, told it is the next rank: it keeps that rank's chunk.
        with mock.patch.object(self, "flat", False), \
                mock.patch.object(self, "rank", (self.rank + 1) % self.world_size):
            theirs = super().reduce_scatter(index, grad_full)
        mine = theirs.new_zeros(self.shards[index].param.shape)
        rows = min(len(mine), len(theirs))
        mine[:rows] = theirs[:rows]
        return mine


class FSDPKeepsGathered(reference.FSDP):
    def pack(self, tensor):
        return tensor  # autograd saves every gathered weight until backward


class FSDPPrefetchAll(reference.FSDP):
    def take(self, index):
        with mock.patch.object(reference_fsdp, "PREFETCH", len(self.shards)):
            return super().take(index)


class FSDPCastAfterGather(reference.FSDP):
    """Gathers the float32 master rows, casts the full weight afterwards: twice the bytes on the wire in bf16."""

    def take(self, index):
        with mock.patch.object(self, "compute_dtype", None):
            full = super().take(index)
        return full.to(self.dtype_of(index))


class FSDPNoBroadcast(reference.FSDP):
    def __init__(self, module, compute_dtype=None):
        with mock.patch.object(reference_fsdp, "broadcast_from_rank_0", lambda module: None):
            super().__init__(module, compute_dtype)


class FSDPUnchecked(reference.FSDP):
    def __init__(self, module, compute_dtype=None):
        with mock.patch.object(reference_fsdp, "check_same_parameters", lambda module: None):
            super().__init__(module, compute_dtype)


class FSDPFrozenTrained(reference.FSDP):
    def make_shard(self, weight):
        shard = super().make_shard(weight)
        shard.param.requires_grad_(True)  # requires_grad not carried over: frozen weights get gradients
        return shard


class FSDPStateOnRank0(reference.FSDP):
    def full_state_dict(self):
        state = super().full_state_dict()  # every rank takes part in the gathers
        return state if self.rank == 0 else {}


# ============================================================================================= table

MUTANTS: list[Mutant] = [
    Mutant("bpe_smaller_pair_tie_break", "train_bpe", "count ties go to the lexicographically smaller pair",
           _train_bpe_smaller_tie_break),
    Mutant("bpe_merges_across_specials", "train_bpe", "specials not split out: pre-tokenized and merged like text",
           _train_bpe_specials_as_text),
    Mutant("bpe_specials_counted", "train_bpe", "specials split out but counted as words: their pairs get merged",
           _train_bpe_specials_counted),
    Mutant("bpe_one_merge_too_many", "train_bpe", "vocab_size − 255 − #specials merges (off by one)",
           _train_bpe_one_merge_too_many),
    Mutant("bpe_no_contractions", "train_bpe", "pre-tokenizer without the '(?:[sdmt]|ll|ve|re) alternative",
           _train_bpe_no_contractions),
    Mutant("tokenizer_shortest_special_first", "Tokenizer", "overlapping specials: the shortest matched first (encode)",
           TokenizerShortestSpecialFirst),
    Mutant("tokenizer_strict_decode", "Tokenizer", "decode raises on invalid UTF-8 instead of U+FFFD",
           TokenizerStrictDecode),
    Mutant("tokenizer_leftmost_merge", "Tokenizer", "encode merges the leftmost mergeable pair, not the lowest rank",
           TokenizerLeftmostMerge),
    Mutant("tokenizer_no_contractions", "Tokenizer",
           "encode's pre-tokenizer lacks the '(?:[sdmt]|ll|ve|re) alternative", TokenizerNoContractions),
    Mutant("tokenizer_no_whitespace_lookahead", "Tokenizer", r"encode's pre-tokenizer lacks \s+(?!\S): "
           "a run of spaces keeps its last space", TokenizerNoLookahead),
    Mutant("tokenizer_chunks_encoded_alone", "Tokenizer", "encode_iterable encodes each chunk on its own: "
           "tokens split at chunk boundaries", TokenizerChunksEncodedAlone),
    Mutant("tokenizer_eager_iterable", "Tokenizer", "encode_iterable joins the whole input first: memory unbounded",
           TokenizerEagerIterable),
    Mutant("tokenizer_drops_trailing_whitespace", "Tokenizer", "encode drops the text's trailing whitespace",
           TokenizerDropsTrailingWhitespace),
    Mutant("tokenizer_unregistered_special", "Tokenizer", "<|endoftext|> split out as a special even when not "
           "registered", TokenizerUnregisteredSpecial),
    Mutant("linear_fan_in_std", "Linear", "init std 1/√d_in instead of √(2/(d_in+d_out))", LinearFanInStd),
    Mutant("linear_untruncated", "Linear", "init N(0, σ²) not truncated at ±3σ", LinearUntruncated),
    Mutant("linear_transposed", "Linear", "weight stored (d_in, d_out), y = x W", LinearTransposed),
    Mutant("embedding_std_002", "Embedding", "init std 0.02 (GPT-2's) instead of 1", EmbeddingSmallStd),
    Mutant("embedding_unchecked", "Embedding", "out-of-range ids not rejected (−1 wraps around)", EmbeddingUnchecked),
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
    Mutant("cross_entropy_summed", "cross_entropy", "sums over positions instead of averaging",
           _cross_entropy_summed),
    Mutant("cross_entropy_unshifted", "cross_entropy", "log Σ exp(logits) without the max shift: inf on large logits",
           _cross_entropy_unshifted),
    Mutant("adamw_l2", "AdamW", "λθ added to the gradient (Adam + L2) instead of decoupled decay", AdamWWithL2),
    Mutant("adamw_no_bias_correction", "AdamW", "α_t = α: no bias correction", AdamWNoBiasCorrection),
    Mutant("adamw_decay_with_lr_t", "AdamW", "decay θ −= α_t λ θ with the bias-corrected rate", AdamWDecayWithLrT),
    Mutant("adamw_decay_first", "AdamW", "decay before the Adam step (PyTorch's order)", AdamWDecayFirst),
    Mutant("adamw_eps_inside_sqrt", "AdamW", "m / √(v + ε) instead of m / (√v + ε)", AdamWEpsInsideSqrt),
    Mutant("adamw_state_outside", "AdamW", "m, v, t kept outside optimizer.state: not checkpointed",
           AdamWStateOutside),
    Mutant("schedule_no_floor", "lr_cosine_schedule", "cosine continues past T_c instead of staying at α_min",
           _schedule_no_floor),
    Mutant("schedule_warmup_off_by_one", "lr_cosine_schedule", "warm-up α_max (t + 1)/T_w", _schedule_warmup_off_by_one),
    Mutant("clip_without_eps", "clip_gradients", "scale M / norm instead of M / (norm + 1e-6)", _clip_without_eps),
    Mutant("clip_per_tensor", "clip_gradients", "each tensor clipped by its own norm, not the global one",
           _clip_per_tensor),
    Mutant("clip_always", "clip_gradients", "rescales to norm M even when the norm is below M", _clip_always),
    Mutant("get_batch_no_last_start", "get_batch", "starts on [0, n − m − 2]: the last window never drawn",
           _get_batch_no_last_start),
    Mutant("get_batch_unshifted", "get_batch", "targets equal the inputs, not shifted by one", _get_batch_unshifted),
    Mutant("get_batch_int32", "get_batch", "int32 tensors instead of int64", _get_batch_int32),
    Mutant("save_checkpoint_no_optimizer_state", "save_checkpoint", "optimizer moments not saved (hyperparameters only)",
           _save_checkpoint_without_optimizer_state),
    Mutant("load_checkpoint_iteration_zero", "load_checkpoint", "returns 0 instead of the saved iteration",
           _load_checkpoint_iteration_zero),
    Mutant("load_checkpoint_model_only", "load_checkpoint", "restores the model but not the optimizer",
           _load_checkpoint_model_only),
    Mutant("sample_temperature_multiplies", "sample_next_token", "softmax(v·τ) instead of softmax(v/τ)",
           _sample_temperature_multiplies),
    Mutant("sample_top_p_excludes_crossing_token", "sample_next_token", "V(p) stops before the token whose running "
           "total crosses p (only the top token is always kept)", _sample_top_p_excludes_crossing_token),
    Mutant("sample_top_p_tail_floor", "sample_next_token", "tokens outside V(p) keep 2% of their probability instead "
           "of 0, renormalized over the whole vocabulary", _sample_top_p_tail_floor),
    Mutant("sample_top_p_before_temperature", "sample_next_token", "V(p) chosen on softmax(v), not on the tempered "
           "softmax(v/τ) it samples from", _sample_top_p_before_temperature),
    Mutant("sample_ties_to_higher_id", "sample_next_token", "equal probabilities ranked higher id first when cutting "
           "V(p)", _sample_ties_to_higher_id),
    Mutant("sample_in_input_dtype", "sample_next_token", "computed in the logits' dtype: fp16 v/τ overflows",
           _sample_in_input_dtype),
    Mutant("decode_ignores_end_of_text", "decode", "keeps generating after end_of_text_id", _decode_ignores_end_of_text),
    Mutant("decode_drops_end_of_text", "decode", "stops at end_of_text_id but leaves it out of the output",
           _decode_drops_end_of_text),
    Mutant("decode_first_window", "decode", "feeds the first context_length ids instead of the last",
           _decode_first_window),
    Mutant("decode_first_position_logits", "decode", "samples from the first position's logits, not the last's",
           _decode_first_position_logits),
    Mutant("decode_returns_prompt", "decode", "returns the prompt followed by the new ids", _decode_returns_prompt),
    Mutant("decode_in_train_mode", "decode", "runs the model in training mode (no eval())", _decode_in_train_mode),
    Mutant("decode_leaves_eval_mode", "decode", "leaves the model in eval mode instead of restoring model.training",
           _decode_leaves_eval_mode),
    Mutant("rmsnorm_triton_gain_grad_first_row", "RMSNormTriton", "the gain's gradient from the first row only, "
           "not summed over every row", RMSNormTritonGainGradFirstRow),
    Mutant("rmsnorm_triton_eps_outside_sqrt", "RMSNormTriton",
           "x / (√mean(x²) + eps) instead of x / √(mean(x²) + eps)", RMSNormTritonEpsOutsideSqrt),
    Mutant("rmsnorm_triton_no_fp32", "RMSNormTriton", "computed in the input dtype: fp16 x² overflows",
           RMSNormTritonInputDtype),
    Mutant("rmsnorm_triton_padded_mean", "RMSNormTriton", "mean(x²) over the power-of-two block: masked lanes "
           "counted for widths that are not powers of two", RMSNormTritonPaddedMean),
    Mutant("rmsnorm_triton_rstd_held_constant", "RMSNormTriton", "x's gradient dy·g/rms: 1/rms treated as a constant",
           RMSNormTritonRstdHeldConstant),
    Mutant("flash_unscaled", "FlashAttentionPyTorch", "scores QKᵀ without the 1/√d scale", FlashUnscaled),
    Mutant("flash_strictly_causal", "FlashAttentionPyTorch", "causal mask key j < i: no query sees its own key",
           FlashStrictlyCausal),
    Mutant("flash_peeks_one_ahead", "FlashAttentionPyTorch", "causal mask key j ≤ i + 1: reads the next key",
           FlashPeeksOneAhead),
    Mutant("flash_lse_is_max", "FlashAttentionPyTorch", "saves the running max m as L instead of m + log l",
           FlashLseIsMax),
    Mutant("flash_dq_last_key_tile", "FlashAttentionPyTorch", "dQ not accumulated across key tiles: the last tile's "
           "share overwrites the others", FlashDqLastKeyTile),
    Mutant("flash_input_dtype_accumulators", "FlashAttentionPyTorch", "O and l held in the input dtype between key "
           "tiles (16-bit accumulators)", FlashInputDtypeAccumulators),
    Mutant("flash_saves_probabilities", "FlashAttentionPyTorch", "saves the N_q × N_k probabilities P for the "
           "backward instead of recomputing them", FlashSavesProbabilities),
    Mutant("flash_triton_unscaled", "FlashAttentionTriton", "scores QKᵀ without the 1/√d scale", FlashTritonUnscaled),
    Mutant("flash_triton_lse_in_log2", "FlashAttentionTriton", "L saved in log₂ units (the exp2 kernel's), not natural "
           "log", FlashTritonLseInLog2),
    Mutant("flash_triton_backward_not_causal", "FlashAttentionTriton", "the backward ignores is_causal: masked pairs "
           "get gradients", FlashTritonBackwardNotCausal),
    Mutant("flash_triton_casts_mixed_dtypes", "FlashAttentionTriton", "K and V silently cast to Q's dtype instead of a "
           "ValueError", FlashTritonCastsMixedDtypes),
    Mutant("flash_attention_heads_as_positions", "flash_attention", "(..., h, N, d) read as (..., N, h, d): attention "
           "over heads", _flash_attention_heads_as_positions),
    Mutant("flash_attention_ignores_causal", "flash_attention", "is_causal ignored: always full attention",
           _flash_attention_ignores_causal),
    Mutant("ddp_sum_without_average", "DDPIndividualParameters", "gradients all-reduced with SUM and not divided "
           "by the world size", DDPSumWithoutAverage),
    Mutant("ddp_no_broadcast", "DDPIndividualParameters", "no broadcast from rank 0 at construction: ranks keep "
           "their own initial values", DDPNoBroadcast),
    Mutant("ddp_all_reduce_after_backward", "DDPIndividualParameters", "all-reduces launched in "
           "finish_gradient_synchronization, after backward: no overlap", DDPAllReduceAfterBackward),
    Mutant("ddp_frozen_gradients", "DDPIndividualParameters", "frozen parameters get zero gradients, all-reduced",
           DDPFrozenGradients),
    Mutant("ddp_tied_reduced_twice", "DDPIndividualParameters", "a tied parameter hooked under both names: "
           "all-reduced twice per backward", DDPTiedTwice),
    Mutant("ddp_unchecked_shapes", "DDPIndividualParameters", "no check that the ranks' modules match",
           DDPUnchecked),
    Mutant("ddp_bucketed_sum_without_average", "DDPBucketed", "buckets all-reduced with SUM and not divided by the "
           "world size", BucketedSumWithoutAverage),
    Mutant("ddp_bucketed_flushed_early", "DDPBucketed", "a bucket sent when its last parameter in reverse order is "
           "ready, before all of its gradients are", BucketedFlushedEarly),
    Mutant("ddp_bucketed_forward_order", "DDPBucketed", "buckets filled in the order of module.parameters(), not "
           "reverse", BucketedForwardOrder),
    Mutant("ddp_bucketed_one_bucket", "DDPBucketed", "bucket_size_mb ignored: always one bucket", BucketedOneBucket),
    Mutant("ddp_bucketed_not_reset", "DDPBucketed", "the per-bucket count of pending gradients not reset after a "
           "step", BucketedNotReset),
    Mutant("sharded_no_broadcast", "ShardedOptimizer", "owners step their shard but never broadcast it",
           ShardedNoBroadcast),
    Mutant("sharded_replicated_state", "ShardedOptimizer", "every rank steps every parameter: optimizer state not "
           "sharded", ShardedReplicatedState),
    Mutant("sharded_late_group_ignored", "ShardedOptimizer", "a group added after construction never reaches the "
           "local optimizer", ShardedLateGroupIgnored),
    Mutant("sharded_stale_hyperparameters", "ShardedOptimizer", "param_groups changes (an LR schedule) never reach "
           "the local optimizer", ShardedStaleHyperparameters),
    Mutant("sharded_zero_grad_owned_only", "ShardedOptimizer", "zero_grad clears only the owned parameters' "
           "gradients", ShardedZeroGradOwnedOnly),
    Mutant("fsdp_replicated_summed", "FSDP", "replicated parameters' gradients all-reduced with SUM, not divided "
           "by the world size", FSDPReplicatedSummed),
    Mutant("fsdp_replicated_not_communicated", "FSDP", "replicated parameters' gradients never all-reduced",
           FSDPReplicatedLocal),
    Mutant("fsdp_gradient_summed", "FSDP", "shards' gradients reduce-scattered with SUM, not divided by the world "
           "size", FSDPGradientSummed),
    Mutant("fsdp_wrong_shard", "FSDP", "rank r's shard gets the gradient rows of rank (r + 1) mod N", FSDPWrongShard),
    Mutant("fsdp_keeps_gathered", "FSDP", "gathered weights saved by autograd until backward instead of gathered "
           "again", FSDPKeepsGathered),
    Mutant("fsdp_prefetch_all", "FSDP", "no prefetch limit: every weight gathered at the first layer",
           FSDPPrefetchAll),
    Mutant("fsdp_cast_after_gather", "FSDP", "compute_dtype applied after the all-gather: float32 on the wire",
           FSDPCastAfterGather),
    Mutant("fsdp_no_broadcast", "FSDP", "no broadcast from rank 0: each rank's shard cut from its own initial "
           "weights", FSDPNoBroadcast),
    Mutant("fsdp_unchecked_shapes", "FSDP", "no check that the ranks' modules match", FSDPUnchecked),
    Mutant("fsdp_frozen_trained", "FSDP", "shards of frozen weights require grad: they get gradients and are "
           "trained", FSDPFrozenTrained),
    Mutant("fsdp_state_on_rank_0_only", "FSDP", "full_state_dict returns the state on rank 0 and {} elsewhere",
           FSDPStateOnRank0),
]
BY_NAME: dict[str, Mutant] = {m.name: m for m in MUTANTS}


def bundle(name: str) -> Implementation:
    """The implementation of mutant ``name``."""
    return BY_NAME[name].implementation()


def __getattr__(name: str) -> Implementation:
    # ``--impl tests.kit.mutants:<name>``: the loader does getattr(module, name).
    if name in BY_NAME:
        return bundle(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r} (mutants: {sorted(BY_NAME)})")


# A mutant name shadowed by a module attribute would make ``--impl tests.kit.mutants:<name>``
# load that attribute instead of the bundle (module __getattr__ only sees missing names).
_SHADOWED = set(BY_NAME) & set(globals())
assert not _SHADOWED, f"mutant names shadowed by module attributes: {sorted(_SHADOWED)}"
