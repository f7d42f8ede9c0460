"""The whole LM against an independent oracle: HF transformers' LlamaForCausalLM (A1 §3).

Our TransformerLM is a Llama: pre-norm RMSNorm blocks, RoPE, SwiGLU, untied head. With the
weights converted, HF's model must give the same logits. Built offline from a LlamaConfig;
nothing is downloaded. HF rotates half-split pairs (i, i + d/2) where we rotate adjacent
pairs (2k, 2k+1), so the q_proj and k_proj rows are permuted within each head:
[x0, x1, x2, x3, ...] -> [x0, x2, ..., x1, x3, ...]. Attention scores are dot products of
q and k permuted alike, so they do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

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


CASES = [  # (config, batch size, sequence length)
    pytest.param(Config(), 1, 32, id="2layers-d64-h4-full-context"),
    pytest.param(Config(d_model=32, num_heads=2, d_ff=96, rope_theta=500.0), 3, 17, id="2layers-d32-h2-batch3"),
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
        num_key_value_heads=config.num_heads, hidden_act="silu", rms_norm_eps=1e-5, rope_theta=config.rope_theta,
        max_position_embeddings=config.context_length, tie_word_embeddings=False, attention_bias=False,
        mlp_bias=False, attn_implementation="eager",
    )
    # transformers 5 moves rope_theta into rope_parameters; make sure it arrived either way.
    rope_parameters = getattr(hf_config, "rope_parameters", None) or {}
    theta = rope_parameters.get("rope_theta", getattr(hf_config, "rope_theta", None))
    assert theta == config.rope_theta, f"LlamaConfig did not take rope_theta={config.rope_theta} (got {theta})"
    return transformers.LlamaForCausalLM(hf_config).to(torch.float32).eval()


def randomized_state(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Fresh random values for every weight; norm gains away from 1 so that ln1/ln2/ln_final are told apart."""
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
            if ours in ("attn.q_proj.weight", "attn.k_proj.weight"):
                value = adjacent_to_half_split(value, config.num_heads)
            converted[f"model.layers.{i}.{theirs}"] = value
    return converted


@pytest.mark.component("TransformerLM")
@pytest.mark.parametrize("config, batch, seq", CASES)
def test_logits_match_hf_llama(config, batch, seq, impl, device, transformers):
    """TransformerLM is a Llama: same logits as HF LlamaForCausalLM with converted weights (A1 §3.1, §3.6)."""
    ours = impl.TransformerLM(vocab_size=config.vocab_size, context_length=config.context_length,
                              d_model=config.d_model, num_layers=config.num_layers, num_heads=config.num_heads,
                              d_ff=config.d_ff, rope_theta=config.rope_theta, device=device, dtype=torch.float32)
    state = randomized_state(ours, seed=batch * 1000 + seq)
    ours.load_state_dict({name: value.to(device) for name, value in state.items()})
    hf_state = to_hf(state, config)  # a missing spec key fails here: the implementation's state dict
    token_ids = torch.randint(0, config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(seq))
    with oracle("HF transformers' LlamaForCausalLM"), torch.no_grad():
        theirs = hf_llama(transformers, config)
        missing, unexpected = theirs.load_state_dict(hf_state, strict=False)
        assert not unexpected and all("rotary" in name for name in missing), (missing, unexpected)
        expected = theirs.to(device)(input_ids=token_ids.to(device), use_cache=False).logits
    with torch.no_grad():
        got = ours(token_ids.to(device))
    assert_close(got, expected, what="TransformerLM logits vs HF LlamaForCausalLM", dtype=torch.float32)
