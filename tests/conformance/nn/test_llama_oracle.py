"""The whole LM against an independent oracle: HF transformers' LlamaForCausalLM (A1 §3).

Our TransformerLM is a Llama: pre-norm RMSNorm blocks, RoPE, SwiGLU, untied head. With the
weights converted, HF's model must give the same logits; with the A3 training API's model options
(num_kv_heads, head_dim, tie_embeddings: strict, missing where the constructor lacks them) HF's
num_key_value_heads, head_dim and tie_word_embeddings give the same logits and gradients. Built offline from a LlamaConfig;
nothing is downloaded. HF rotates half-split pairs (i, i + d/2) where we rotate adjacent
pairs (2k, 2k+1), so the q_proj and k_proj rows are permuted within each head:
[x0, x1, x2, x3, ...] -> [x0, x2, ..., x1, x3, ...]. Attention scores are dot products of
q and k permuted alike, so they do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from spec.loading import needs
from tests.conformance.nn.model_options import needs_options
from tests.harness.compare import assert_close
from tests.harness.oracles import oracle


@dataclass(frozen=True)
class Config:
    vocab_size: int = 100
    context_length: int = 32
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    d_ff: int = 192
    rope_theta: float = 10000.0
    # The model options (None / False: the course's model, and no keyword passed).
    num_kv_heads: int | None = None
    head_dim: int | None = None
    tie_embeddings: bool = False
    norm_eps: float | None = None  # None: RMSNorm's 1e-5

    @property
    def options(self) -> dict:
        chosen = dict(num_kv_heads=self.num_kv_heads, head_dim=self.head_dim, tie_embeddings=self.tie_embeddings,
                      norm_eps=self.norm_eps)
        return {name: value for name, value in chosen.items() if value not in (None, False)}

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def d_head(self) -> int:
        return self.head_dim or self.d_model // self.num_heads


CASES = [  # (config, batch size, sequence length)
    pytest.param(Config(), 1, 32, id="2layers-d64-h4-full-context"),
    pytest.param(Config(d_model=32, num_heads=2, d_ff=96, rope_theta=500.0), 3, 17, id="2layers-d32-h2-batch3"),
]
OPTION_CASES = [
    pytest.param(Config(num_kv_heads=2), 2, 32, id="gqa-h4-kv2"),
    pytest.param(Config(num_heads=8, num_kv_heads=2, d_model=64), 2, 19, id="gqa-h8-kv2"),
    pytest.param(Config(num_kv_heads=1), 2, 16, id="mqa-h4-kv1"),
    pytest.param(Config(head_dim=24), 2, 16, id="head-dim-24-d64-h4"),  # 4 · 24 = 96 ≠ 64
    pytest.param(Config(tie_embeddings=True), 2, 16, id="tied"),
    pytest.param(Config(num_heads=8, num_kv_heads=4, head_dim=12, tie_embeddings=True), 3, 11, id="all-three"),
    # An ε near the activations' mean square (~1 here), so that 1e-5 in its place changes the logits visibly.
    pytest.param(Config(norm_eps=0.5), 2, 16, id="norm-eps-0.5"),
]

# Our state-dict names (the spec's) -> HF Llama's, per layer and for the rest.
LAYER_NAMES = {
    "attn.q_proj.weight": "self_attn.q_proj.weight",
    "attn.k_proj.weight": "self_attn.k_proj.weight",
    "attn.v_proj.weight": "self_attn.v_proj.weight",
    "attn.output_proj.weight": "self_attn.o_proj.weight",
    "ffn.w1.weight": "mlp.gate_proj.weight",
    "ffn.w3.weight": "mlp.up_proj.weight",
    "ffn.w2.weight": "mlp.down_proj.weight",
    "ln1.weight": "input_layernorm.weight",
    "ln2.weight": "post_attention_layernorm.weight",
}
OTHER_NAMES = {
    "token_embeddings.weight": "model.embed_tokens.weight",
    "ln_final.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}


@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip("transformers", reason="the Llama oracle needs HF transformers "
                                                      "(pip install 'cs336-spec-kit[oracles]')")


def hf_llama(transformers, config: Config) -> torch.nn.Module:
    hf_config = transformers.LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model, intermediate_size=config.d_ff,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.kv_heads, head_dim=config.d_head, hidden_act="silu", rms_norm_eps=config.norm_eps or 1e-5,
        rope_theta=config.rope_theta, max_position_embeddings=config.context_length,
        tie_word_embeddings=config.tie_embeddings, attention_bias=False, mlp_bias=False, attn_implementation="eager",
    )
    # transformers 5 moves rope_theta into rope_parameters; make sure it arrived either way.
    rope_parameters = getattr(hf_config, "rope_parameters", None) or {}
    theta = rope_parameters.get("rope_theta", getattr(hf_config, "rope_theta", None))
    assert theta == config.rope_theta, f"LlamaConfig did not take rope_theta={config.rope_theta} (got {theta})"
    return transformers.LlamaForCausalLM(hf_config).to(torch.float32).eval()


def randomized_state(model: torch.nn.Module, seed: int, tied: bool = False) -> dict[str, torch.Tensor]:
    """Fresh random values for every weight; norm gains away from 1 so that ln1/ln2/ln_final are told apart;
    ``tied``: lm_head.weight holds the embedding's values (the spec keeps both keys on one tensor)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, value in model.state_dict().items():
        noise = torch.randn(value.shape, generator=generator, dtype=torch.float32)
        if name.endswith(("ln1.weight", "ln2.weight", "ln_final.weight")):
            state[name] = 1 + 0.2 * noise
        elif name == "token_embeddings.weight":
            state[name] = noise
        else:
            state[name] = noise / value.shape[-1] ** 0.5
    if tied:
        state["lm_head.weight"] = state["token_embeddings.weight"]
    return state


def adjacent_to_half_split(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Permute q/k projection rows within each head from interleaved pairs to HF's half-split layout."""
    d_head = weight.shape[0] // num_heads
    within_head = torch.cat((torch.arange(0, d_head, 2), torch.arange(1, d_head, 2)))  # (d_head,)
    rows = (torch.arange(num_heads)[:, None] * d_head + within_head).flatten()  # (d_model,)
    return weight[rows]


def to_hf(state: dict[str, torch.Tensor], config: Config) -> dict[str, torch.Tensor]:
    converted = {OTHER_NAMES[name]: value for name, value in state.items() if name in OTHER_NAMES}
    for i in range(config.num_layers):
        for ours, theirs in LAYER_NAMES.items():
            value = state[f"layers.{i}.{ours}"]
            if ours == "attn.q_proj.weight":
                value = adjacent_to_half_split(value, config.num_heads)
            elif ours == "attn.k_proj.weight":
                value = adjacent_to_half_split(value, config.kv_heads)
            converted[f"model.layers.{i}.{theirs}"] = value
    return converted


def build_pair(impl, transformers, config: Config, batch: int, seq: int, device):
    """Our TransformerLM and HF's Llama with the same random weights (converted), and token ids."""
    ours = impl.TransformerLM(vocab_size=config.vocab_size, context_length=config.context_length,
                              d_model=config.d_model, num_layers=config.num_layers, num_heads=config.num_heads,
                              d_ff=config.d_ff, rope_theta=config.rope_theta, **config.options, device=device,
                              dtype=torch.float32)
    state = randomized_state(ours, seed=batch * 1000 + seq, tied=config.tie_embeddings)
    ours.load_state_dict({name: value.to(device) for name, value in state.items()})
    hf_state = to_hf(state, config)  # a missing spec key fails here: the implementation's state dict
    with oracle("HF transformers' LlamaForCausalLM"):
        theirs = hf_llama(transformers, config)
        their_shapes = {name: tuple(value.shape) for name, value in theirs.state_dict().items()}
    # Outside the oracle's block: a weight of the wrong shape is the implementation's mistake, not the kit's.
    wrong = {name: (tuple(value.shape), their_shapes[name]) for name, value in hf_state.items()
             if name in their_shapes and tuple(value.shape) != their_shapes[name]}
    assert not wrong, f"weights of another shape than the spec's (HF name: got, expected): {wrong}"
    with oracle("HF transformers' LlamaForCausalLM"):
        missing, unexpected = theirs.load_state_dict(hf_state, strict=False)
        assert not unexpected and all("rotary" in name for name in missing), (missing, unexpected)
        theirs.to(device)
    token_ids = torch.randint(0, config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(seq))
    return ours, theirs, token_ids.to(device)


@pytest.mark.component("TransformerLM")
@pytest.mark.parametrize("config, batch, seq", CASES + [
    pytest.param(*case.values, id=case.id, marks=pytest.mark.strict) for case in OPTION_CASES])
def test_logits_match_hf_llama(config, batch, seq, impl, device, transformers):
    """TransformerLM is a Llama: same logits as HF LlamaForCausalLM with converted weights (A1 §3.1, §3.6); with
    the model options, as HF's num_key_value_heads, head_dim and tie_word_embeddings."""
    needs_options(impl.TransformerLM, config.options)
    ours, theirs, token_ids = build_pair(impl, transformers, config, batch, seq, device)
    with oracle("HF transformers' LlamaForCausalLM"), torch.no_grad():
        expected = theirs(input_ids=token_ids, use_cache=False).logits
    with torch.no_grad():
        got = ours(token_ids)
    assert_close(got, expected, what="TransformerLM logits vs HF LlamaForCausalLM", dtype=torch.float32)


@pytest.mark.strict
@pytest.mark.component("TransformerLM")
@pytest.mark.parametrize("config, batch, seq", OPTION_CASES)
def test_option_gradients_match_hf_llama(config, batch, seq, impl, device, transformers):
    """With the model options every parameter's gradient is HF Llama's: a key/value head's gradient sums its group
    of query heads; the tied matrix's sums the embedding lookup and the LM head (one Parameter, not a copy)."""
    needs_options(impl.TransformerLM, config.options)
    needs(impl.TransformerLM, "autograd", "TransformerLM")
    ours, theirs, token_ids = build_pair(impl, transformers, config, batch, seq, device)
    targets = torch.roll(token_ids, -1, dims=-1)
    loss = torch.nn.functional.cross_entropy
    with oracle("HF transformers' LlamaForCausalLM"):
        loss(theirs(input_ids=token_ids, use_cache=False).logits.flatten(0, 1), targets.flatten()).backward()
        their_grads = {name: p.grad for name, p in theirs.named_parameters()}  # a tied matrix listed once
    loss(ours(token_ids).flatten(0, 1), targets.flatten()).backward()
    our_grads = {name: p.grad for name, p in ours.named_parameters()}
    assert all(grad is not None for grad in our_grads.values()), [n for n, g in our_grads.items() if g is None]
    converted = to_hf(our_grads | ({"lm_head.weight": our_grads["token_embeddings.weight"]}
                                   if config.tie_embeddings and "lm_head.weight" not in our_grads else {}), config)
    for name, grad in their_grads.items():
        assert_close(converted[name], grad, what=f"gradient of {name} vs HF Llama's", dtype=torch.float32)
