"""Conformance of the Transformer LM building blocks (spec/nn.py, handout A1 §3).

Every forward pass is checked against an independent oracle: torch.nn.functional where torch
has the operation, and slow, obviously-correct code written from the handout's formulas
where it has not (RoPE as a block-diagonal rotation matrix, attention as a loop over heads,
the block and the LM composed from those pieces). Weights are loaded through
``load_state_dict`` with the spec's keys, which also pins the state-dict names.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from spec.loading import needs
from tests.conformance.nn.model_options import needs_options
from tests.harness.compare import assert_close
from tests.harness.helpers import randint, randn

PROPERTY = settings(max_examples=25, deadline=None)
SEEDS = st.integers(0, 2**31 - 1)
EPS = 1e-5  # the spec's default RMSNorm eps
LM = dict(vocab_size=61, context_length=12, d_model=32, num_layers=2, num_heads=4, d_ff=48, rope_theta=1000.0)


# ---------------------------------------------------------------------------------------------
# Helpers: state dicts with the spec's keys, loading (seeded tensors: tests/harness/helpers.py).


def random_state(shapes: dict[str, tuple[int, ...]], seed: int, device) -> dict[str, torch.Tensor]:
    """Gains (1-D) near one, matrices scaled by 1/√fan_in so activations stay O(1)."""
    state = {}
    for i, (key, shape) in enumerate(sorted(shapes.items())):
        if len(shape) == 1:
            state[key] = 1 + randn(*shape, seed=seed + i, device=device, scale=0.2)
        else:
            state[key] = randn(*shape, seed=seed + i, device=device, scale=shape[-1] ** -0.5)
    return state


def load(module, state: dict[str, torch.Tensor]):
    """Check the state-dict keys are exactly the spec's, then load ``state`` (strict)."""
    assert set(module.state_dict()) == set(state), (
        f"state-dict keys differ from the spec: extra {sorted(set(module.state_dict()) - set(state))}, "
        f"missing {sorted(set(state) - set(module.state_dict()))}")
    module.load_state_dict(state)
    return module


def attn_shapes(d_model: int, prefix: str = "") -> dict[str, tuple[int, int]]:
    return {f"{prefix}{name}_proj.weight": (d_model, d_model) for name in ("q", "k", "v", "output")}


def ffn_shapes(d_model: int, d_ff: int, ffn: str = "swiglu", prefix: str = "") -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}w1.weight": (d_ff, d_model), f"{prefix}w2.weight": (d_model, d_ff)}
    if ffn == "swiglu":
        shapes[f"{prefix}w3.weight"] = (d_ff, d_model)
    return shapes


def block_shapes(d_model: int, d_ff: int, norm: str = "pre", ffn: str = "swiglu", prefix: str = ""):
    shapes = attn_shapes(d_model, prefix + "attn.") | ffn_shapes(d_model, d_ff, ffn, prefix + "ffn.")
    if norm != "none":
        shapes |= {f"{prefix}ln1.weight": (d_model,), f"{prefix}ln2.weight": (d_model,)}
    return shapes


def lm_shapes(cfg: dict, norm: str = "pre", ffn: str = "swiglu") -> dict[str, tuple[int, ...]]:
    d, vocab = cfg["d_model"], cfg["vocab_size"]
    shapes = {"token_embeddings.weight": (vocab, d), "lm_head.weight": (vocab, d)}
    for i in range(cfg["num_layers"]):
        shapes |= block_shapes(d, cfg["d_ff"], norm, ffn, prefix=f"layers.{i}.")
    if norm == "pre":
        shapes["ln_final.weight"] = (d,)
    return shapes


def assert_grads_match(module, x: torch.Tensor, oracle) -> None:
    """Backprop one random cotangent through the module and through ``oracle(x, params)``."""
    x_impl = x.clone().requires_grad_(True)
    out = module(x_impl)
    cotangent = randn(*out.shape, seed=99, device=x.device)
    (out * cotangent).sum().backward()
    params = {name: p.detach().clone().requires_grad_(True) for name, p in module.named_parameters()}
    x_ref = x.clone().requires_grad_(True)
    (oracle(x_ref, params) * cotangent).sum().backward()
    assert_close(x_impl.grad, x_ref.grad, what="gradient w.r.t. the input")
    for name, p in module.named_parameters():
        assert p.grad is not None, f"no gradient reached parameter {name}"
        assert_close(p.grad, params[name].grad, what=f"gradient w.r.t. {name}")


def truncated_std(sigma: float, cut: float = 3.0) -> float:
    """Standard deviation of N(0, σ²) truncated to [−cut·σ, cut·σ]."""
    pdf = math.exp(-cut**2 / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(cut / math.sqrt(2))
    return sigma * math.sqrt(1 - 2 * cut * pdf / mass)


def assert_truncated_normal(weight: torch.Tensor, sigma: float, what: str) -> None:
    w = weight.detach().double().cpu()
    assert abs(w.mean()) < 0.02 * sigma, f"{what}: mean {w.mean():.3g}, expected 0"
    expected = truncated_std(sigma)
    assert abs(w.std() / expected - 1) < 0.03, f"{what}: std {w.std():.4g}, expected {expected:.4g} (σ = {sigma:.4g})"
    assert w.abs().max() <= 3 * sigma * (1 + 1e-6), f"{what}: max |w| {w.abs().max():.4g} beyond 3σ = {3 * sigma:.4g}"


# ---------------------------------------------------------------------------------------------
# Oracles, from torch.nn.functional and from the handout's formulas. ``s`` is a state dict.


def rmsnorm_ref(x, gain, eps=EPS):
    return F.rms_norm(x.float(), (x.shape[-1],), gain.float(), eps).to(x.dtype)


def ffn_ref(x, s, prefix=""):
    """SwiGLU (eq. 7) when the state has ``w3``, else the ungated SiLU ablation."""
    hidden = F.silu(F.linear(x, s[prefix + "w1.weight"]))
    if prefix + "w3.weight" in s:
        hidden = hidden * F.linear(x, s[prefix + "w3.weight"])
    return F.linear(hidden, s[prefix + "w2.weight"])


@functools.lru_cache(maxsize=None)
def rotation_matrix(theta: float, d: int, position: int) -> torch.Tensor:
    """R_i of handout eq. 8-9: 2x2 rotation blocks on the diagonal, k indexed from 0 (CONVENTIONS.md)."""
    R = torch.zeros(d, d, dtype=torch.float64)
    for k in range(d // 2):
        angle = position / theta ** (2 * k / d)
        R[2 * k:2 * k + 2, 2 * k:2 * k + 2] = torch.tensor([[math.cos(angle), -math.sin(angle)],
                                                            [math.sin(angle), math.cos(angle)]])
    return R


def rope_ref(x, positions, theta):
    """x (..., seq, d) rotated by R_p for the broadcast positions (..., seq), as matrix products."""
    d = x.shape[-1]
    R = torch.stack([rotation_matrix(theta, d, int(p)) for p in positions.flatten()])
    R = R.reshape(*positions.shape, d, d).to(x.device)  # (..., seq, d, d)
    return (R @ x.double().unsqueeze(-1)).squeeze(-1).to(x.dtype)


def mhsa_ref(x, s, num_heads, theta=None, positions=None, prefix=""):
    """Eq. 14 one head at a time: head h owns projection rows h·d_k … (h+1)·d_k − 1."""
    d_k = x.shape[-1] // num_heads
    if positions is None:
        positions = torch.arange(x.shape[-2], device=x.device)
    heads = []
    for h in range(num_heads):
        rows = slice(h * d_k, (h + 1) * d_k)
        q, k, v = (F.linear(x, s[f"{prefix}{name}_proj.weight"][rows]) for name in ("q", "k", "v"))
        if theta is not None:
            q, k = rope_ref(q, positions, theta), rope_ref(k, positions, theta)
        heads.append(F.scaled_dot_product_attention(q, k, v, is_causal=True))
    return F.linear(torch.cat(heads, dim=-1), s[prefix + "output_proj.weight"])


def block_ref(x, s, num_heads, theta, positions=None, norm="pre", prefix=""):
    """Eq. 15 (pre-norm) and the §7.3 ablations, from the oracle pieces."""
    def attn(y): return mhsa_ref(y, s, num_heads, theta, positions, prefix + "attn.")
    def ffn(y): return ffn_ref(y, s, prefix + "ffn.")
    def ln(i, y): return rmsnorm_ref(y, s[f"{prefix}ln{i}.weight"])
    if norm == "pre":
        z = x + attn(ln(1, x))
        return z + ffn(ln(2, z))
    if norm == "post":
        z = ln(1, x + attn(x))
        return ln(2, z + ffn(z))
    z = x + attn(x)
    return z + ffn(z)


def lm_ref(ids, s, cfg, norm="pre", use_rope=True):
    x = F.embedding(ids, s["token_embeddings.weight"])
    theta = cfg["rope_theta"] if use_rope else None
    for i in range(cfg["num_layers"]):
        x = block_ref(x, s, cfg["num_heads"], theta, norm=norm, prefix=f"layers.{i}.")
    if norm == "pre":
        x = rmsnorm_ref(x, s["ln_final.weight"])
    return F.linear(x, s["lm_head.weight"])


# ---------------------------------------------------------------------------------------------
# Every module: dtype/device keywords, and load_state_dict rejecting a wrong shape.


def _component(name, *values):
    return pytest.param(*values, id=name, marks=pytest.mark.component(name))


BUILDERS = [  # (builder, takes token ids); d_model = 8 everywhere
    _component("Linear", lambda impl, **kw: impl.Linear(8, 8, **kw), False),
    _component("Embedding", lambda impl, **kw: impl.Embedding(10, 8, **kw), True),
    _component("RMSNorm", lambda impl, **kw: impl.RMSNorm(8, **kw), False),
    _component("SwiGLU", lambda impl, **kw: impl.SwiGLU(8, 16, **kw), False),
    _component("MultiHeadSelfAttention", lambda impl, **kw: impl.MultiHeadSelfAttention(8, 2, **kw), False),
    _component("TransformerBlock", lambda impl, **kw: impl.TransformerBlock(8, 2, 16, **kw), False),
    _component("TransformerLM", lambda impl, **kw: impl.TransformerLM(10, 8, 8, 1, 2, 16, **kw), True),
]


@pytest.mark.strict
@pytest.mark.parametrize("build, takes_ids", BUILDERS)
def test_dtype_and_device_keywords(impl, device, build, takes_ids, request):
    """Every module accepts ``device`` and ``dtype``: its parameters and its output follow them."""
    component = request.node.get_closest_marker("component").args[0]
    needs(getattr(impl, component), "dtype", component)
    module = build(impl, device=device, dtype=torch.float64)
    for name, p in module.named_parameters():
        assert p.dtype == torch.float64 and p.device.type == device.type, f"{name}: {p.dtype} on {p.device}"
    x = (randint(10, 2, 5, seed=0, device=device) if takes_ids
         else randn(2, 5, 8, seed=0, device=device, dtype=torch.float64))
    assert module(x).dtype == torch.float64


WRONG_SHAPES = [  # (module builder, key to corrupt): a transposed or resized weight
    _component("Linear", lambda impl: impl.Linear(8, 4), "weight"),
    _component("Embedding", lambda impl: impl.Embedding(10, 8), "weight"),
    _component("RMSNorm", lambda impl: impl.RMSNorm(8), "weight"),
    _component("SwiGLU", lambda impl: impl.SwiGLU(8, 16), "w2.weight"),
    _component("TransformerLM", lambda impl: impl.TransformerLM(10, 8, 8, 1, 2, 16), "layers.0.ffn.w1.weight"),
]


@pytest.mark.strict
@pytest.mark.parametrize("build, key", WRONG_SHAPES)
def test_load_state_dict_rejects_wrong_shape(impl, build, key):
    """load_state_dict with a wrongly shaped weight raises RuntimeError or ValueError naming the key."""
    module = build(impl)
    state = module.state_dict()
    bad = state[key]
    state[key] = torch.zeros(bad.shape[::-1] if bad.dim() == 2 else (bad.shape[0] + 1,))
    with pytest.raises((RuntimeError, ValueError)) as error:
        module.load_state_dict(state)
    assert key in str(error.value), f"the error does not name {key!r}: {error.value}"


# ---------------------------------------------------------------------------------------------
# Linear and Embedding.


@pytest.mark.component("Linear")
def test_linear_matches_f_linear(impl, device):
    """Linear stores W as (d_out, d_in) and computes x Wᵀ (no bias) over any leading dims."""
    linear = impl.Linear(12, 5, device=device)
    assert tuple(linear.weight.shape) == (5, 12), f"weight shape {tuple(linear.weight.shape)}, expected (d_out, d_in)"
    state = random_state({"weight": (5, 12)}, seed=1, device=device)
    load(linear, state)
    x = randn(2, 3, 12, seed=2, device=device)
    assert_close(linear(x), F.linear(x, state["weight"]))


@pytest.mark.strict  # the handout's "approximate initializations": the course's tests never see them
@pytest.mark.component("Linear")
def test_linear_init(impl):
    """Linear init: truncated normal, mean 0, std √(2/(d_in+d_out)), no weight beyond ±3σ."""
    needs(impl.Linear, "initialization", "Linear")
    torch.manual_seed(0)
    d_in, d_out = 512, 128  # unequal, so that √(1/d_in) or √(2/d_in) would be caught
    assert_truncated_normal(impl.Linear(d_in, d_out).weight, math.sqrt(2 / (d_in + d_out)), "Linear.weight")


@pytest.mark.component("Linear")
def test_linear_gradients(impl, device):
    """Linear's gradients (input and weight) equal torch autograd through F.linear."""
    needs(impl.Linear, "autograd", "Linear")
    linear = load(impl.Linear(6, 4, device=device), random_state({"weight": (4, 6)}, seed=3, device=device))
    assert_grads_match(linear, randn(3, 6, seed=4, device=device), lambda x, p: F.linear(x, p["weight"]))


@pytest.mark.component("Embedding")
def test_embedding_matches_f_embedding(impl, device):
    """Embedding looks up rows of a (num_embeddings, embedding_dim) weight for ids of any shape."""
    embedding = impl.Embedding(20, 6, device=device)
    state = random_state({"weight": (20, 6)}, seed=5, device=device)
    load(embedding, state)
    ids = randint(20, 2, 3, 4, seed=6, device=device)
    assert_close(embedding(ids), F.embedding(ids, state["weight"]))


@pytest.mark.strict  # the handout's "approximate initializations": the course's tests never see them
@pytest.mark.component("Embedding")
def test_embedding_init(impl):
    """Embedding init: N(0, 1) truncated at ±3."""
    needs(impl.Embedding, "initialization", "Embedding")
    torch.manual_seed(0)
    assert_truncated_normal(impl.Embedding(256, 64).weight, 1.0, "Embedding.weight")


# UNCHECKED_IDS_ON_CUDA: the id checks run on the CPU. On CUDA an implementation that does not check (torch's own
# embedding) turns a bad id into a device-side assert, which leaves the process's CUDA context unusable: every later
# test of the run would fail with it.
@pytest.mark.strict
@pytest.mark.component("Embedding")
@pytest.mark.parametrize("bad", [13, -2])
def test_embedding_rejects_out_of_range_ids(impl, bad):
    """A token id outside [0, num_embeddings) raises IndexError or ValueError naming the id."""
    embedding = impl.Embedding(10, 4)  # on the CPU whatever --device: see UNCHECKED_IDS_ON_CUDA
    with pytest.raises((IndexError, ValueError)) as error:
        embedding(torch.tensor([[1, 2, bad, 3]]))
    assert str(bad) in str(error.value), f"the error does not name the id {bad}: {error.value}"


# ---------------------------------------------------------------------------------------------
# RMSNorm, SiLU, SwiGLU.


@pytest.mark.component("RMSNorm")
@pytest.mark.parametrize("eps", [EPS, 1e-2])
def test_rmsnorm_matches_f_rms_norm(impl, device, eps):
    """RMSNorm is x / √(mean(x²) + eps) · g over the last dim, with the eps it is given."""
    norm = load(impl.RMSNorm(16, eps=eps, device=device), random_state({"weight": (16,)}, seed=7, device=device))
    x = randn(2, 3, 16, seed=8, device=device, scale=0.1)  # small enough that eps = 1e-2 shows
    assert_close(norm(x), rmsnorm_ref(x, norm.weight.detach(), eps))


@pytest.mark.component("RMSNorm")
def test_rmsnorm_default_eps(impl, device):
    """RMSNorm's default eps is 1e-5, inside the square root (visible on inputs of magnitude 1e-3)."""
    norm = load(impl.RMSNorm(16, device=device), random_state({"weight": (16,)}, seed=9, device=device))
    x = randn(4, 16, seed=10, device=device, scale=1e-3)
    assert_close(norm(x), rmsnorm_ref(x, norm.weight.detach(), EPS))


@pytest.mark.component("RMSNorm")
def test_rmsnorm_gain_starts_at_ones(impl, device):
    """RMSNorm's gain ``weight`` has shape (d_model,) and starts at ones."""
    needs(impl.RMSNorm, "initialization", "RMSNorm")
    weight = impl.RMSNorm(16, device=device).weight
    assert_close(weight, torch.ones(16), what="initial RMSNorm.weight")


@pytest.mark.component("RMSNorm")
def test_rmsnorm_computes_in_float32(impl, device):
    """RMSNorm computes in float32: fp16 inputs of magnitude 1e4 stay finite and match, cast back to fp16."""
    state = random_state({"weight": (16,)}, seed=11, device=device)
    norm = load(impl.RMSNorm(16, device=device, dtype=torch.float16), {"weight": state["weight"].half()})
    x = randn(4, 16, seed=12, device=device, scale=1e4).half()
    got = norm(x)
    assert got.dtype == torch.float16, f"output dtype {got.dtype}, expected the input's float16"
    assert torch.isfinite(got).all(), "fp16 output overflowed: x² must be computed in float32"
    expected = F.rms_norm(x.float(), (16,), norm.weight.detach().float(), EPS)
    assert_close(got.float(), expected, dtype=torch.float16)


@pytest.mark.component("RMSNorm")
@PROPERTY
@given(seed=SEEDS, c=st.floats(0.1, 1000.0))
def test_rmsnorm_scale_invariance(impl, device, seed, c):
    """RMSNorm(c·x) = RMSNorm(x) for c > 0 (eps negligible against mean(x²))."""
    norm = load(impl.RMSNorm(16, device=device), random_state({"weight": (16,)}, seed=seed, device=device))
    x = randn(3, 16, seed=seed + 1, device=device, scale=10.0)
    assert_close(norm(c * x), norm(x), what=f"RMSNorm({c:g}·x) vs RMSNorm(x)")


@pytest.mark.component("RMSNorm")
def test_rmsnorm_gradients(impl, device):
    """RMSNorm's gradients (input and gain) equal torch autograd through F.rms_norm."""
    needs(impl.RMSNorm, "autograd", "RMSNorm")
    norm = load(impl.RMSNorm(8, device=device), random_state({"weight": (8,)}, seed=13, device=device))
    assert_grads_match(norm, randn(3, 8, seed=14, device=device), lambda x, p: rmsnorm_ref(x, p["weight"]))


@pytest.mark.component("silu")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_silu_matches_f_silu(impl, device, dtype):
    """silu(x) = x · σ(x) elementwise, finite and shape-preserving even at |x| = 1000."""
    x = torch.cat([randn(3, 7, seed=15, device=device, scale=5.0, dtype=dtype).flatten(),
                   torch.tensor([-1000.0, -100.0, -20.0, 0.0, 20.0, 100.0, 1000.0], device=device, dtype=dtype)])
    x = x.reshape(4, 7)
    assert_close(impl.silu(x), F.silu(x))


@pytest.mark.component("SwiGLU")
def test_swiglu_matches_oracle(impl, device):
    """SwiGLU is W2(SiLU(W1 x) ⊙ W3 x) with w1, w3 (d_ff, d_model) and w2 (d_model, d_ff)."""
    ffn = impl.SwiGLU(16, 40, device=device)
    state = random_state(ffn_shapes(16, 40), seed=16, device=device)
    load(ffn, state)
    x = randn(2, 3, 16, seed=17, device=device)
    assert_close(ffn(x), ffn_ref(x, state))


@pytest.mark.component("SwiGLU")
def test_swiglu_gradients(impl, device):
    """SwiGLU's gradients (input, w1, w2, w3) equal torch autograd through the F oracle."""
    needs(impl.SwiGLU, "autograd", "SwiGLU")
    ffn = load(impl.SwiGLU(8, 24, device=device), random_state(ffn_shapes(8, 24), seed=18, device=device))
    assert_grads_match(ffn, randn(2, 3, 8, seed=19, device=device), ffn_ref)


# ---------------------------------------------------------------------------------------------
# RoPE.


@pytest.mark.component("RotaryEmbedding")
@pytest.mark.parametrize("theta, x_lead, positions_shape", [
    pytest.param(10000.0, (2,), None, id="positions-0..seq-1"),
    pytest.param(100.0, (2,), (2,), id="positions-per-batch"),
    pytest.param(10000.0, (2, 3), (2, 1), id="positions-broadcast-over-heads"),
])
def test_rope_matches_rotation_matrices(impl, device, theta, x_lead, positions_shape):
    """RoPE multiplies each position's vector by the block-diagonal R_i (eq. 8-9, k from 0); positions broadcast."""
    rope = impl.RotaryEmbedding(theta, 8, 32, device=device)
    x = randn(*x_lead, 6, 8, seed=20, device=device)
    positions = (torch.arange(6, device=device) if positions_shape is None
                 else randint(32, *positions_shape, 6, seed=21, device=device))
    assert_close(rope(x, positions), rope_ref(x, positions, theta))


@pytest.mark.component("RotaryEmbedding")
def test_rope_rotates_adjacent_pairs(impl, device):
    """RoPE rotates (x₂ₖ, x₂ₖ₊₁) by p·θ^(−2k/d) and keeps the pair at 2k, 2k+1 (interleaved, not half-split)."""
    d, p, theta = 8, 3, 10.0
    rope = impl.RotaryEmbedding(theta, d, 8, device=device)
    for k in range(d // 2):
        x = torch.zeros(1, d, device=device)
        x[0, 2 * k] = 1.0  # the first element of pair k: it must turn into (cos, sin) of pair k
        expected = torch.zeros(1, d)
        angle = p * theta ** (-2 * k / d)
        expected[0, 2 * k], expected[0, 2 * k + 1] = math.cos(angle), math.sin(angle)
        assert_close(rope(x, torch.tensor([p], device=device)), expected, what=f"RoPE of unit vector e_{2 * k}")


@pytest.mark.component("RotaryEmbedding")
def test_rope_has_no_learnable_parameters(impl, device):
    """RoPE has no learnable parameters: its rotations are fixed by theta, d_k and the positions (A1 §3.4.3)."""
    rope = impl.RotaryEmbedding(500.0, 8, 16, device=device)
    assert not list(rope.parameters()), "RoPE must have no learnable parameters"


@pytest.mark.strict
@pytest.mark.component("RotaryEmbedding")
def test_rope_attributes_and_bounds(impl, device):
    """RoPE exposes theta, d_k, max_seq_len, and rejects positions ≥ max_seq_len with ValueError."""
    rope = impl.RotaryEmbedding(500.0, 8, 16, device=device)
    assert (rope.theta, rope.d_k, rope.max_seq_len) == (500.0, 8, 16)
    with pytest.raises(ValueError):
        rope(randn(3, 8, seed=22, device=device), torch.tensor([0, 15, 16], device=device))


@pytest.mark.component("RotaryEmbedding")
@PROPERTY
@given(seed=SEEDS, theta=st.sampled_from([10.0, 10000.0]))
def test_rope_preserves_norms(impl, device, seed, theta):
    """RoPE is a rotation: every vector keeps its L2 norm."""
    rope = impl.RotaryEmbedding(theta, 16, 64, device=device)
    x = randn(2, 5, 16, seed=seed, device=device)
    y = rope(x, randint(64, 2, 5, seed=seed + 1, device=device))
    assert_close(y.norm(dim=-1), x.norm(dim=-1), what="‖RoPE(x)‖ vs ‖x‖")


@pytest.mark.component("RotaryEmbedding")
@PROPERTY
@given(seed=SEEDS, m=st.integers(0, 40), n=st.integers(0, 40), shift=st.integers(0, 23))
def test_rope_is_relative(impl, device, seed, m, n, shift):
    """⟨R_m q, R_n k⟩ depends only on m − n: shifting both positions by s leaves it unchanged."""
    rope = impl.RotaryEmbedding(10000.0, 16, 64, device=device)
    q, k = F.normalize(randn(2, 16, seed=seed, device=device), dim=-1)

    def score(a, b):
        return (rope(q[None], torch.tensor([a], device=device)) * rope(k[None], torch.tensor([b], device=device))).sum()

    assert_close(score(m + shift, n + shift), score(m, n), what=f"score at positions ({m}, {n}) shifted by {shift}")


# ---------------------------------------------------------------------------------------------
# softmax and scaled dot-product attention.


@pytest.mark.component("softmax")
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_matches_f_softmax(impl, device, dim):
    """softmax normalizes exp(x) along the given dim."""
    x = randn(3, 4, 5, seed=23, device=device, scale=3.0)
    assert_close(impl.softmax(x, dim=dim), F.softmax(x, dim=dim))


@pytest.mark.component("softmax")
@PROPERTY
@given(seed=SEEDS, shift=st.floats(-100.0, 100.0), dim=st.sampled_from([0, -1]))
def test_softmax_shift_invariance(impl, device, seed, shift, dim):
    """softmax(x + c) = softmax(x) for any constant c."""
    x = randn(4, 6, seed=seed, device=device, scale=5.0)
    assert_close(impl.softmax(x + shift, dim=dim), impl.softmax(x, dim=dim), what=f"softmax(x + {shift:g})")


@pytest.mark.component("softmax")
@PROPERTY
@given(seed=SEEDS, scale=st.floats(1e3, 1e5))
def test_softmax_large_inputs_stay_finite(impl, device, seed, scale):
    """softmax subtracts the max: inputs of magnitude 1000 and more give finite probabilities."""
    x = randn(4, 6, seed=seed, device=device, scale=scale)
    got = impl.softmax(x, dim=-1)
    assert torch.isfinite(got).all(), f"softmax(x · {scale:g}) is not finite: the max was not subtracted"
    assert_close(got, F.softmax(x, dim=-1))


SDPA_LEADS = [pytest.param((4,), id="3-D"), pytest.param((2, 3), id="4-D")]


def qkv(lead, n_q, n_k, seed, device, d_k=8, d_v=5):
    return (randn(*lead, n_q, d_k, seed=seed, device=device), randn(*lead, n_k, d_k, seed=seed + 1, device=device),
            randn(*lead, n_k, d_v, seed=seed + 2, device=device))


@pytest.mark.component("scaled_dot_product_attention")
@pytest.mark.parametrize("lead", SDPA_LEADS)
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_sdpa_matches_f_sdpa(impl, device, lead, masked):
    """Attention is softmax(QKᵀ/√d_k)V with a boolean mask (True = attend), over any leading dims."""
    Q, K, V = qkv(lead, 6, 7, seed=24, device=device)
    mask = None
    if masked:
        mask = randint(2, *lead, 6, 7, seed=25, device=device).bool()
        mask[..., 0] = True  # every query keeps at least one key
    assert_close(impl.scaled_dot_product_attention(Q, K, V, mask), F.scaled_dot_product_attention(Q, K, V, mask))


@pytest.mark.component("scaled_dot_product_attention")
def test_sdpa_mask_true_means_attend(impl, device):
    """mask[i, j] = True means query i may attend to key j: one True per row picks exactly that value row."""
    Q, K, V = qkv((), 5, 5, seed=26, device=device)
    chosen = torch.tensor([3, 0, 4, 4, 1], device=device)
    mask = F.one_hot(chosen, 5).bool()
    assert_close(impl.scaled_dot_product_attention(Q, K, V, mask), V[chosen], what="output with one key per query")


@pytest.mark.component("scaled_dot_product_attention")
def test_sdpa_weights_are_a_distribution_over_allowed_keys(impl, device):
    """Masked-out keys get probability exactly 0 and the allowed keys' probabilities sum to 1."""
    Q, K, _ = qkv((2,), 6, 6, seed=27, device=device)
    mask = randint(2, 2, 6, 6, seed=28, device=device).bool() | torch.eye(6, dtype=torch.bool, device=device)
    weights = impl.scaled_dot_product_attention(Q, K, torch.eye(6, device=device).expand(2, 6, 6), mask)  # V = I
    assert (weights[~mask] == 0).all(), f"masked-out keys got weight up to {weights[~mask].abs().max():.3g}"
    assert_close(weights.sum(-1), torch.ones(2, 6), what="sum of attention weights")


@pytest.mark.component("scaled_dot_product_attention")
@PROPERTY
@given(seed=SEEDS, n_q=st.integers(1, 6), n_k=st.integers(2, 8), data=st.data())
def test_sdpa_ignores_values_of_masked_keys(impl, device, seed, n_q, n_k, data):
    """Changing V at keys masked out for query i leaves output i unchanged."""
    Q, K, V = qkv((2,), n_q, n_k, seed=seed, device=device)
    mask = randint(2, 2, n_q, n_k, seed=seed + 3, device=device).bool()
    mask[..., data.draw(st.integers(0, n_k - 1), label="always-allowed key")] = True
    i = data.draw(st.integers(0, n_q - 1), label="query")
    V2 = V + 1e3 * randn(*V.shape, seed=seed + 4, device=device) * ~mask[:, i, :, None]
    got = impl.scaled_dot_product_attention(Q, K, V2, mask)[:, i]
    assert_close(got, impl.scaled_dot_product_attention(Q, K, V, mask)[:, i], what=f"output of query {i}")


# ---------------------------------------------------------------------------------------------
# Multi-head self-attention.


@pytest.mark.component("MultiHeadSelfAttention")
@pytest.mark.parametrize("use_rope, x_lead, positions_shape", [
    pytest.param(False, (2,), None, id="no-rope"),
    pytest.param(True, (2,), None, id="rope-default-positions"),
    pytest.param(True, (2,), (2,), id="rope-positions-per-batch"),
    pytest.param(True, (2, 3), (2, 1), id="rope-positions-broadcast"),
])
def test_mhsa_matches_per_head_oracle(impl, device, use_rope, x_lead, positions_shape):
    """Causal MHSA: rows grouped by head, RoPE on Q and K (not V) at token_positions, default 0 … seq − 1."""
    d_model, heads, theta = 16, 4, 1000.0
    rope = impl.RotaryEmbedding(theta, d_model // heads, 32, device=device) if use_rope else None
    attn = impl.MultiHeadSelfAttention(d_model, heads, rope=rope, device=device)
    state = random_state(attn_shapes(d_model), seed=29, device=device)
    load(attn, state)
    x = randn(*x_lead, 6, d_model, seed=30, device=device)
    positions = None if positions_shape is None else randint(32, *positions_shape, 6, seed=31, device=device)
    expected = mhsa_ref(x, state, heads, theta if use_rope else None, positions)
    assert_close(attn(x, positions) if positions is not None else attn(x), expected)


@pytest.mark.component("MultiHeadSelfAttention")
@PROPERTY
@given(seed=SEEDS, seq=st.integers(2, 8), data=st.data())
def test_mhsa_never_reads_the_future(impl, device, seed, seq, data):
    """Causal: changing the inputs after position i leaves the outputs at positions ≤ i unchanged."""
    rope = impl.RotaryEmbedding(10000.0, 4, 16, device=device)
    attn = load(impl.MultiHeadSelfAttention(16, 4, rope=rope, device=device),
                random_state(attn_shapes(16), seed=seed, device=device))
    i = data.draw(st.integers(0, seq - 2), label="last unchanged position")
    x = randn(2, seq, 16, seed=seed + 1, device=device)
    x2 = x.clone()
    x2[:, i + 1:] = randn(2, seq - i - 1, 16, seed=seed + 2, device=device)
    assert_close(attn(x2)[:, :i + 1], attn(x)[:, :i + 1], what=f"outputs at positions ≤ {i}")


@pytest.mark.strict
@pytest.mark.component("MultiHeadSelfAttention")
def test_mhsa_rejects_indivisible_heads(impl, device):
    """d_model not divisible by num_heads raises ValueError."""
    with pytest.raises(ValueError):
        impl.MultiHeadSelfAttention(10, 3, device=device)


# ---------------------------------------------------------------------------------------------
# Transformer block and language model. Ablations (A1 §7.3): post-norm, no norm, SiLU FFN, NoPE.


# The ablations' switches (norm=, ffn=, use_rope=) are the kit's interface to §7.3's experiments, which the course
# asks to run but not to expose: strict.
ARCHITECTURES = [
    pytest.param("pre", "swiglu", True, id="pre-norm"),
    pytest.param("post", "swiglu", True, id="post-norm", marks=pytest.mark.strict),
    pytest.param("none", "swiglu", True, id="no-norm", marks=pytest.mark.strict),
    pytest.param("pre", "silu", True, id="silu-ffn", marks=pytest.mark.strict),
    pytest.param("pre", "swiglu", False, id="nope", marks=pytest.mark.strict),
]


def is_ablation(norm, ffn, use_rope):
    return (norm, ffn, use_rope) != ("pre", "swiglu", True)


def ablation_switches(norm, ffn, use_rope=True) -> dict:
    """The keywords of an ablation; none for the spec's architecture, so that a module without them is checked."""
    return dict(norm=norm, ffn=ffn) | ({} if use_rope else dict(use_rope=False)) if is_ablation(norm, ffn, use_rope) else {}


@pytest.mark.component("TransformerBlock")
@pytest.mark.parametrize("norm, ffn, use_rope", ARCHITECTURES)
def test_block_matches_oracle(impl, device, norm, ffn, use_rope):
    """Pre-norm block z = x + MHA(ln1(x)), y = z + FFN(ln2(z)) (eq. 15), and its §7.3 ablations."""
    if is_ablation(norm, ffn, use_rope):
        needs(impl.TransformerBlock, "ablations", "TransformerBlock")
    d_model, heads, d_ff, theta = 16, 2, 24, 1000.0
    rope = impl.RotaryEmbedding(theta, d_model // heads, 32, device=device) if use_rope else None
    block = impl.TransformerBlock(d_model, heads, d_ff, rope=rope, **ablation_switches(norm, ffn), device=device)
    state = random_state(block_shapes(d_model, d_ff, norm, ffn), seed=32, device=device)
    load(block, state)
    x = randn(2, 5, d_model, seed=33, device=device)
    positions = torch.arange(5, device=device) + 7  # explicit, not starting at 0
    expected = block_ref(x, state, heads, theta if use_rope else None, positions, norm)
    assert_close(block(x, positions), expected)


def build_lm(impl, device, state_seed=None, **ablation):
    """The test LM (config ``LM``), loaded with a random state with the spec's keys when a seed is given."""
    model = impl.TransformerLM(**LM, **ablation, device=device)
    if state_seed is not None:
        shapes = lm_shapes(LM, ablation.get("norm", "pre"), ablation.get("ffn", "swiglu"))
        state = random_state(shapes, seed=state_seed, device=device)
        return load(model, state), state
    return model, None


@pytest.mark.component("TransformerLM")
@pytest.mark.parametrize("norm, ffn, use_rope", ARCHITECTURES)
def test_lm_matches_oracle(impl, device, norm, ffn, use_rope):
    """LM: embeddings → pre-norm blocks (one RoPE) → ln_final → untied lm_head; ablations drop what they say."""
    if is_ablation(norm, ffn, use_rope):
        needs(impl.TransformerLM, "ablations", "TransformerLM")
    model, state = build_lm(impl, device, state_seed=34, **ablation_switches(norm, ffn, use_rope))
    ids = randint(LM["vocab_size"], 2, LM["context_length"], seed=35, device=device)
    assert_close(model(ids), lm_ref(ids, state, LM, norm, use_rope))


@pytest.mark.strict  # the course's LM takes (batch, seq) only
@pytest.mark.component("TransformerLM")
@pytest.mark.parametrize("lead", [(), (2, 3)], ids=["unbatched", "two-batch-dims"])
def test_lm_any_leading_dims(impl, device, lead):
    """The LM maps token ids (..., seq) to logits (..., seq, vocab) for any leading dims."""
    model, state = build_lm(impl, device, state_seed=36)
    ids = randint(LM["vocab_size"], *lead, 5, seed=37, device=device)
    assert_close(model(ids), lm_ref(ids, state, LM))


@pytest.mark.component("TransformerLM")
@PROPERTY
@given(seed=SEEDS, data=st.data())
def test_lm_never_reads_the_future(impl, device, seed, data):
    """Causal LM: changing the tokens after position i leaves the logits at positions ≤ i unchanged."""
    model, _ = build_lm(impl, device, state_seed=seed % 1000)
    seq = data.draw(st.integers(2, LM["context_length"]), label="seq")
    i = data.draw(st.integers(0, seq - 2), label="last unchanged position")
    ids = randint(LM["vocab_size"], 2, seq, seed=seed, device=device)
    ids2 = ids.clone()
    ids2[:, i + 1:] = randint(LM["vocab_size"], 2, seq - i - 1, seed=seed + 1, device=device)
    assert_close(model(ids2)[:, :i + 1], model(ids)[:, :i + 1], what=f"logits at positions ≤ {i}")


@pytest.mark.component("TransformerLM")
def test_lm_gradients_reach_every_parameter(impl, device):
    """Backward through the LM gives every parameter a finite, non-zero gradient."""
    needs(impl.TransformerLM, "autograd", "TransformerLM")
    model, _ = build_lm(impl, device, state_seed=38)
    ids = randint(LM["vocab_size"], 2, 8, seed=39, device=device)
    targets = randint(LM["vocab_size"], 2, 8, seed=40, device=device)
    F.cross_entropy(model(ids).flatten(0, 1), targets.flatten()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient in {name}"
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"


@pytest.mark.component("TransformerLM")
def test_lm_accepts_its_context_length(impl, device):
    """A sequence of exactly context_length tokens gives (1, context_length, vocab) logits (A1 §3.1)."""
    model, _ = build_lm(impl, device)
    n = LM["context_length"]
    assert model(torch.zeros(1, n, dtype=torch.long, device=device)).shape == (1, n, LM["vocab_size"])


@pytest.mark.strict
@pytest.mark.component("TransformerLM")
def test_lm_context_length(impl, device):
    """The LM exposes context_length and raises ValueError beyond it."""
    model, _ = build_lm(impl, device)
    assert model.context_length == LM["context_length"]
    n = LM["context_length"]
    with pytest.raises(ValueError):
        model(torch.zeros(1, n + 1, dtype=torch.long, device=device))


@pytest.mark.strict
@pytest.mark.component("TransformerLM")
@pytest.mark.parametrize("bad", [LM["vocab_size"] + 2, -1])
def test_lm_rejects_out_of_range_ids(impl, bad):
    """A token id outside [0, vocab_size) raises IndexError or ValueError naming the id."""
    model, _ = build_lm(impl, torch.device("cpu"))  # on the CPU whatever --device: see UNCHECKED_IDS_ON_CUDA
    with pytest.raises((IndexError, ValueError)) as error:
        model(torch.tensor([[0, 5, bad, 1]]))
    assert str(bad) in str(error.value), f"the error does not name the id {bad}: {error.value}"


@pytest.mark.strict
@pytest.mark.component("TransformerLM")
def test_lm_rejects_indivisible_heads(impl, device):
    """d_model not divisible by num_heads raises ValueError."""
    with pytest.raises(ValueError):
        impl.TransformerLM(**(LM | dict(d_model=30, num_heads=4)), device=device)


# ---------------------------------------------------------------------------------------------
# The A3 training API's model options (TransformerLM's num_kv_heads, head_dim, tie_embeddings): strict, and missing
# where the constructor lacks them (tests/conformance/nn/model_options.py). d_model 32, 4 heads: d_k 8 by default.


MODEL_OPTIONS = [  # the options, and changes to the test LM's configuration
    pytest.param(dict(num_kv_heads=2), id="gqa-4q-2kv"),
    pytest.param(dict(num_kv_heads=1), id="mqa-4q-1kv"),
    pytest.param(dict(head_dim=12), id="head-dim-12"),  # num_heads · head_dim = 48 ≠ d_model
    pytest.param(dict(head_dim=4, num_kv_heads=2), id="head-dim-4-gqa"),
    pytest.param(dict(d_model=30, head_dim=8), id="head-dim-8-d30"),  # d_model not divisible by num_heads
    pytest.param(dict(tie_embeddings=True), id="tied"),
    pytest.param(dict(num_kv_heads=2, head_dim=12, tie_embeddings=True), id="all-three"),
]


def model_options(config: dict) -> dict:
    """The keywords of ``config`` that are model options (the rest is the test LM's configuration)."""
    return {name: value for name, value in config.items() if name not in LM}


def head_counts(config: dict) -> tuple[int, int, int]:
    """(num_heads, num_kv_heads, head_dim) of ``config``, the defaults filled in."""
    heads = config["num_heads"]
    return heads, config.get("num_kv_heads", heads), config.get("head_dim", config["d_model"] // heads)


def options_state(config: dict, seed: int, device) -> dict[str, torch.Tensor]:
    """A random state with the options' shapes; tied, lm_head.weight holds the embedding's values (one matrix)."""
    heads, kv_heads, head_dim = head_counts(config)
    d_model = config["d_model"]
    shapes = lm_shapes(config)
    for i in range(config["num_layers"]):
        prefix = f"layers.{i}.attn."
        shapes |= {prefix + "q_proj.weight": (heads * head_dim, d_model),
                   prefix + "k_proj.weight": (kv_heads * head_dim, d_model),
                   prefix + "v_proj.weight": (kv_heads * head_dim, d_model),
                   prefix + "output_proj.weight": (d_model, heads * head_dim)}
    state = random_state(shapes, seed=seed, device=device)
    if config.get("tie_embeddings"):
        state["lm_head.weight"] = state["token_embeddings.weight"]
    return state


def gqa_attention_ref(x, s, num_heads, num_kv_heads, head_dim, theta, prefix):
    """Eq. 14 with key/value heads shared by groups of query heads, through torch's SDPA with enable_gqa (key/value
    head g serves query heads g·r … g·r + r − 1), scaled by 1/√head_dim."""
    def heads(name, n):  # (..., seq, n · head_dim) -> (..., n, seq, head_dim)
        return F.linear(x, s[f"{prefix}{name}_proj.weight"]).unflatten(-1, (n, head_dim)).transpose(-3, -2)
    q, k, v = heads("q", num_heads), heads("k", num_kv_heads), heads("v", num_kv_heads)
    positions = torch.arange(x.shape[-2], device=x.device)
    q, k = rope_ref(q, positions, theta), rope_ref(k, positions, theta)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)  # (..., h, seq, head_dim)
    return F.linear(out.transpose(-3, -2).flatten(-2), s[prefix + "output_proj.weight"])


def lm_options_ref(ids, s, config: dict):
    """The pre-norm LM of lm_ref with the options: grouped-query attention, head_dim, the head tied to E."""
    heads, kv_heads, head_dim = head_counts(config)
    x = F.embedding(ids, s["token_embeddings.weight"])
    for i in range(config["num_layers"]):
        prefix = f"layers.{i}."
        z = x + gqa_attention_ref(rmsnorm_ref(x, s[prefix + "ln1.weight"]), s, heads, kv_heads, head_dim,
                                  config["rope_theta"], prefix + "attn.")
        x = z + ffn_ref(rmsnorm_ref(z, s[prefix + "ln2.weight"]), s, prefix + "ffn.")
    head = s["token_embeddings.weight" if config.get("tie_embeddings") else "lm_head.weight"]
    return F.linear(rmsnorm_ref(x, s["ln_final.weight"]), head)


@pytest.mark.strict
@pytest.mark.component("TransformerLM")
@pytest.mark.parametrize("options", MODEL_OPTIONS)
def test_lm_model_options_match_oracle(impl, device, options):
    """num_kv_heads: grouped-query attention, heads grouped as Llama's repeat_kv; head_dim: the head width apart
    from d_model / num_heads; tie_embeddings: logits x Eᵀ. Each gives torch SDPA's GQA oracle's logits."""
    config = LM | options
    needs_options(impl.TransformerLM, model_options(config))
    model = impl.TransformerLM(**config, device=device)
    state = options_state(config, seed=60, device=device)
    load(model, state)
    ids = randint(LM["vocab_size"], 2, LM["context_length"], seed=61, device=device)
    assert_close(model(ids), lm_options_ref(ids, state, config))


@pytest.mark.strict
@pytest.mark.component("TransformerLM")
def test_lm_tied_embeddings_are_one_parameter(impl, device):
    """With tie_embeddings the LM head is the embedding itself, not a copy: a change to token_embeddings.weight
    changes the head too, and its gradient sums the lookup's and the head's."""
    config = LM | dict(tie_embeddings=True)
    needs_options(impl.TransformerLM, model_options(config))
    needs(impl.TransformerLM, "autograd", "TransformerLM")
    model = impl.TransformerLM(**config, device=device)
    state = options_state(config, seed=62, device=device)
    load(model, state)
    ids = randint(LM["vocab_size"], 2, 8, seed=63, device=device)
    targets = randint(LM["vocab_size"], 2, 8, seed=64, device=device)
    with torch.no_grad():
        model.token_embeddings.weight.mul_(2)
    doubled = state | {"token_embeddings.weight": 2 * state["token_embeddings.weight"]}
    logits = model(ids)
    assert_close(logits, lm_options_ref(ids, doubled, config), what="logits after doubling token_embeddings.weight")
    F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
    reference = {name: value.clone().requires_grad_(True) for name, value in doubled.items()}
    F.cross_entropy(lm_options_ref(ids, reference, config).flatten(0, 1), targets.flatten()).backward()
    assert model.token_embeddings.weight.grad is not None, "no gradient reached token_embeddings.weight"
    assert_close(model.token_embeddings.weight.grad, reference["token_embeddings.weight"].grad,
                 what="gradient of the tied matrix (embedding lookup + LM head)")


@pytest.mark.strict
@pytest.mark.component("TransformerLM")
def test_lm_tied_matrix_starts_as_the_lm_head(impl):
    """Tied, the one matrix is initialized as the LM head (a Linear d_model → vocab): truncated normal, std
    √(2/(d_model + vocab)), not the embedding's N(0, 1), which would start the logits at std √d_model."""
    config = LM | dict(vocab_size=1000, d_model=64, tie_embeddings=True)  # 64,000 weights: std within ±0.3%
    needs_options(impl.TransformerLM, model_options(config))
    needs(impl.TransformerLM, "initialization", "TransformerLM")
    torch.manual_seed(0)
    model = impl.TransformerLM(**config)
    sigma = math.sqrt(2 / (config["d_model"] + config["vocab_size"]))
    assert_truncated_normal(model.token_embeddings.weight, sigma, "the tied token_embeddings.weight")


@pytest.mark.strict
@pytest.mark.component("TransformerLM")
def test_lm_rejects_kv_heads_not_dividing_heads(impl, device):
    """num_kv_heads must divide num_heads (each key/value head serves a whole group): ValueError otherwise."""
    needs_options(impl.TransformerLM, dict(num_kv_heads=3))
    with pytest.raises(ValueError):
        impl.TransformerLM(**LM, num_kv_heads=3, device=device)
