"""The Transformer's modules through the bridge (spec/adapters/nn.py): the spec's constructors and state-dict keys
around the course's run_* functions."""

from __future__ import annotations

import pytest
import torch

import impl
from spec import COMPONENTS, ComponentMissing
from spec.loading import needs


def reference_weights(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random values for every parameter (norm gains away from one, so that they matter)."""
    generator = torch.Generator().manual_seed(seed)
    return {name: (1 + 0.2 * torch.randn(v.shape, generator=generator)) if v.dim() == 1
            else torch.randn(v.shape, generator=generator) / v.shape[-1] ** 0.5
            for name, v in module.state_dict().items()}


LM_CONFIG = (50, 16, 32, 2, 4, 64, 1000.0)  # vocab, context, d_model, layers, heads, d_ff, theta


def build_pair(bundle, component):
    """(bridged module, reference module, input) of one module component, same configuration."""
    def rope(b):
        return b.RotaryEmbedding(1000.0, 8, 16)

    builders = {
        "Linear": (lambda b: b.Linear(12, 5), torch.randn(2, 3, 12)),
        "Embedding": (lambda b: b.Embedding(20, 6), torch.randint(0, 20, (2, 7))),
        "RMSNorm": (lambda b: b.RMSNorm(16, eps=1e-3), torch.randn(2, 3, 16)),
        "SwiGLU": (lambda b: b.SwiGLU(16, 40), torch.randn(2, 3, 16)),
        "MultiHeadSelfAttention": (lambda b: b.MultiHeadSelfAttention(32, 4), torch.randn(2, 7, 32)),
        "MultiHeadSelfAttention+rope": (lambda b: b.MultiHeadSelfAttention(32, 4, rope(b)), torch.randn(2, 7, 32)),
        "TransformerBlock": (lambda b: b.TransformerBlock(32, 4, 64, rope(b)), torch.randn(2, 7, 32)),
        "TransformerLM": (lambda b: b.TransformerLM(*LM_CONFIG), torch.randint(0, 50, (2, 9))),
    }
    build, x = builders[component]
    return build(bundle), build(impl), x


MODULES = ["Linear", "Embedding", "RMSNorm", "SwiGLU", "MultiHeadSelfAttention", "MultiHeadSelfAttention+rope",
           "TransformerBlock", "TransformerLM"]


@pytest.mark.parametrize("component", MODULES)
def test_state_dict_keys_and_shapes_match_the_reference(bridged, component):
    ours, reference, _ = build_pair(bridged, component)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
           [(k, v.shape) for k, v in reference.state_dict().items()]


@pytest.mark.parametrize("component", MODULES)
def test_bridged_modules_match_the_reference_on_the_same_weights(bridged, component):
    ours, reference, x = build_pair(bridged, component)
    weights = reference_weights(reference, seed=len(component))
    reference.load_state_dict(weights)
    ours.load_state_dict(weights)
    assert torch.equal(ours(x), reference(x))


def test_mhsa_with_rope_takes_token_positions(bridged):
    ours, reference, x = build_pair(bridged, "MultiHeadSelfAttention+rope")
    weights = reference_weights(reference, seed=1)
    reference.load_state_dict(weights)
    ours.load_state_dict(weights)
    positions = torch.randint(0, 16, (2, 7))
    assert torch.equal(ours(x, positions), reference(x, positions))
    assert not torch.equal(ours(x, positions), ours(x))


def test_rope_exposes_its_configuration_and_has_no_parameters(bridged):
    rope = bridged.RotaryEmbedding(500.0, 8, 16)
    assert (rope.theta, rope.d_k, rope.max_seq_len) == (500.0, 8, 16)
    assert not list(rope.parameters())
    x, positions = torch.randn(2, 5, 8), torch.randint(0, 16, (2, 5))
    assert torch.equal(rope(x, positions), impl.RotaryEmbedding(500.0, 8, 16)(x, positions))


def test_parameters_follow_device_and_dtype(bridged):
    model = bridged.TransformerLM(*LM_CONFIG, device="cpu", dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model(torch.randint(0, 50, (1, 4))).dtype == torch.float64


@pytest.mark.parametrize("component", [c for c, area in COMPONENTS.items() if area == "nn" and c[0].isupper()])
def test_modules_declare_what_adapters_cannot_show(bridged, component):
    module = getattr(bridged, component)
    assert issubclass(module, torch.nn.Module)
    for feature in ("initialization", "autograd", "ablations", "dtype"):
        with pytest.raises(ComponentMissing, match=f"{component} is missing: {feature}"):
            needs(module, feature, component)


@pytest.mark.parametrize("component, build", [
    ("TransformerBlock", lambda b: b.TransformerBlock(32, 4, 64, b.RotaryEmbedding(1e4, 8, 16), norm="post")),
    ("TransformerBlock", lambda b: b.TransformerBlock(32, 4, 64, b.RotaryEmbedding(1e4, 8, 16), ffn="silu")),
    ("TransformerBlock", lambda b: b.TransformerBlock(32, 4, 64)),  # the course's block always applies RoPE
    ("TransformerLM", lambda b: b.TransformerLM(*LM_CONFIG, norm="none")),
    ("TransformerLM", lambda b: b.TransformerLM(*LM_CONFIG, use_rope=False)),
    ("MultiHeadSelfAttention", lambda b: b.MultiHeadSelfAttention(10, 3)),  # no constructor to reject it
], ids=["block-post-norm", "block-silu", "block-no-rope", "lm-no-norm", "lm-nope", "mhsa-indivisible"])
def test_what_adapters_cannot_build_is_missing(bridged, component, build):
    with pytest.raises(ComponentMissing) as error:
        build(bridged)
    assert error.value.component == component


def test_block_runs_only_at_positions_from_zero(bridged):
    ours, reference, x = build_pair(bridged, "TransformerBlock")
    weights = reference_weights(reference, seed=2)
    reference.load_state_dict(weights)
    ours.load_state_dict(weights)
    assert torch.equal(ours(x, torch.arange(7)), reference(x))
    with pytest.raises(ComponentMissing, match="token_positions"):
        ours(x, torch.arange(7) + 3)


def test_bridged_modules_pass_no_gradients_to_their_parameters(bridged):
    """Adapters take weights by value: declared as unsupported autograd, and indeed no gradient arrives."""
    linear = bridged.Linear(4, 3)
    linear(torch.randn(2, 4, requires_grad=True)).sum().backward()
    assert linear.weight.grad is None
