"""The LM on the Triton kernels (impl/kernels/fast_lm.py) computes the reference LM's loss and gradients.

On a CPU the kernels run through Triton's interpreter (tests/conftest.py turns it on), at a
tiny size; on a GPU the same swap is what the training program's kernel switch does.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys

import pytest
import torch

from impl.kernels.fast_lm import use_kernels, uses_kernels
from impl.nn import TransformerLM
from impl.kernels.rmsnorm import INTERPRETED, RMSNormTriton
from impl.train import cross_entropy
from tests.harness.compare import assert_close, assert_within_rule
from tests.harness.helpers import REPO, source_mutant

# Odd vocabulary, a non-default θ; d_head = 16, the smallest FlashAttention tile.
SHAPE = dict(vocab_size=61, context_length=32, d_model=64, num_layers=2, num_heads=4, d_ff=96, rope_theta=500.0)

pytestmark = pytest.mark.skipif(not INTERPRETED and not torch.cuda.is_available(),
                                reason="the Triton kernels need a GPU or TRITON_INTERPRET=1 before impl is imported")


def device() -> torch.device:
    return torch.device("cpu" if INTERPRETED else "cuda")


def reference_model(**options) -> TransformerLM:
    torch.manual_seed(0)
    model = TransformerLM(*SHAPE.values(), **options, device=device())
    with torch.no_grad():  # gains away from one, so that a gain mix-up shows
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.2 * torch.randn_like(p))
    return model


def loss_and_grads(model: TransformerLM, ids: torch.Tensor, targets: torch.Tensor):
    model.zero_grad(set_to_none=True)
    loss = cross_entropy(model(ids), targets)
    loss.backward()
    return loss.detach(), {name: p.grad for name, p in model.named_parameters()}


def batch(seq: int = 29, batch_size: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, SHAPE["vocab_size"], (batch_size, seq + 1), generator=g).to(device())
    return ids[:, :-1], ids[:, 1:]


def check_same_training_signal(attention: bool, rmsnorm: bool, attention_kernel=None, **options) -> None:
    reference = reference_model(**options)
    fast = use_kernels(copy.deepcopy(reference), attention=attention, rmsnorm=rmsnorm)
    if attention_kernel is not None:  # instead of the packed operator: the (q, k, v) hook
        for layer in fast.layers:
            layer.attn.fused_attention, layer.attn.attention_kernel = None, attention_kernel
    ids, targets = batch()
    expected_loss, expected_grads = loss_and_grads(reference, ids, targets)
    loss, grads = loss_and_grads(fast, ids, targets)
    assert_close(loss, expected_loss, what="loss")
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        assert grad is not None, f"no gradient reached {name}"
        # fp32 with a different summation order in the kernels: the loss's tolerance, a little looser for gradients.
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=2e-5, msg=lambda m: f"{name}: {m}")


def test_rmsnorm_kernel_gives_the_reference_loss_and_gradients():
    check_same_training_signal(attention=False, rmsnorm=True)


def test_flash_attention_gives_the_reference_loss_and_gradients():
    check_same_training_signal(attention=True, rmsnorm=False)


def test_flash_attention_with_grouped_query_attention_and_tied_embeddings():
    """The kernel is handed every query head's keys and values (the shared ones repeated): the A3 API's models."""
    check_same_training_signal(attention=True, rmsnorm=False, num_kv_heads=2, tie_embeddings=True)


def test_both_kernels_give_the_reference_loss_and_gradients():
    check_same_training_signal(attention=True, rmsnorm=True)


def test_the_triton_attention_kernel_gives_the_reference_loss_and_gradients():
    """impl.flash_attention runs the PyTorch FlashAttention-2 off CUDA; here the Triton kernel itself
    (interpreted on a CPU) takes the LM's (batch, heads, seq, d_head) views."""
    import impl

    def triton_attention(q, k, v, is_causal):
        return impl.FlashAttentionTriton.apply(q, k, v, is_causal)

    check_same_training_signal(attention=True, rmsnorm=True, attention_kernel=triton_attention)


def test_the_lm_with_flash_attention_compiles_to_one_graph():
    """torch.compile traces the LM with FlashAttention-2 without a graph break (fullgraph=True raises at one):
    the kernels run as custom operators, and the compiled loss and gradients equal the eager ones."""
    model = use_kernels(reference_model(), attention=True, rmsnorm=False)
    ids, targets = batch()
    expected_loss, expected_grads = loss_and_grads(model, ids, targets)
    model.compile(fullgraph=True, backend="aot_eager")  # in place, names kept; aot_eager: no C++ compiler needed
    loss, grads = loss_and_grads(model, ids, targets)
    assert_close(loss, expected_loss, what="compiled loss")
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("kernels", ["pytorch", "triton"])
def test_attention_returns_output_and_gradients_in_the_order_of_dims_of_its_inputs(kernels):
    """The LM hands attention (B, h, T, d) views of token-major (B, T, h, d) memory and reads the output as a
    (B, T, h·d) view: O and dQ, dK, dV come back in their inputs' order of dims (no copy to make the output
    token-major again), with the values of contiguous inputs."""
    from impl.kernels import flash_pytorch, flash_triton
    from impl.kernels.multihead import attention_backward, attention_forward

    torch.manual_seed(0)
    q, k, v, do = (torch.randn(2, 29, 4, 16, device=device()).transpose(1, 2) for _ in range(4))  # (B, h, T, d)
    forward, backward = {"pytorch": (attention_forward, attention_backward),
                         "triton": (flash_triton.flash_forward, flash_triton.flash_backward)}[kernels]
    o, lse = forward(q, k, v, True)
    expected_o, expected_lse = flash_pytorch.flash_forward(*(t.contiguous() for t in (q, k, v)), True)
    assert o.stride() == q.stride() and o.transpose(1, 2).is_contiguous()
    torch.testing.assert_close(o, expected_o, rtol=1e-5, atol=1e-5)
    gradients = backward(q, k, v, o, lse, do, True)
    expected = flash_pytorch.flash_backward(*(t.contiguous() for t in (q, k, v, expected_o)), expected_lse,
                                            do.contiguous(), True)
    for name, gradient, x, want in zip("qkv", gradients, (q, k, v), expected):
        assert gradient.stride() == x.stride(), f"d{name}"
        torch.testing.assert_close(gradient, want, rtol=1e-4, atol=1e-5, msg=lambda m: f"d{name}: {m}")


def test_the_lm_with_flash_attention_compiles_with_inductor_to_the_eager_loss_and_gradients():
    """Inductor's code (not only aot_eager's tracing) around the custom operators and the token-major layouts:
    the compiled loss and gradients are the eager ones."""
    model = use_kernels(reference_model(), attention=True, rmsnorm=False)
    ids, targets = batch()
    expected_loss, expected_grads = loss_and_grads(model, ids, targets)
    model.compile(fullgraph=True)
    loss, grads = loss_and_grads(model, ids, targets)
    assert_close(loss, expected_loss, what="compiled loss")
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=2e-5, msg=lambda m: f"{name}: {m}")


def test_the_swap_keeps_parameters_state_dict_and_optimizer():
    """Same Parameter objects (an optimizer built before the swap still trains the model), same state-dict keys."""
    model = reference_model()
    before = dict(model.named_parameters())
    keys = list(model.state_dict())
    use_kernels(model, attention=False, rmsnorm=True)
    assert list(model.state_dict()) == keys
    assert all(p is before[name] for name, p in model.named_parameters())
    assert uses_kernels(model) == {"rmsnorm": 2 * SHAPE["num_layers"] + 1, "attention": 0}
    assert all(isinstance(layer.ln1, RMSNormTriton) and isinstance(layer.ln2, RMSNormTriton) for layer in model.layers)
    use_kernels(model, attention=False, rmsnorm=True)  # twice is the same as once
    assert uses_kernels(model)["rmsnorm"] == 2 * SHAPE["num_layers"] + 1


def test_an_optimizer_built_before_the_swap_trains_the_fused_gains():
    """AdamW built on the reference model, then the swap: its step moves the RMSNormTriton gains."""
    from impl.train import AdamW

    model = reference_model()
    optimizer = AdamW(model.parameters(), lr=1e-2)
    use_kernels(model, attention=False, rmsnorm=True)
    norms = ("ln1.weight", "ln2.weight", "ln_final.weight")
    gains = {name: p.detach().clone() for name, p in model.named_parameters() if name.endswith(norms)}
    loss_and_grads(model, *batch(seed=2))
    optimizer.step()
    params = dict(model.named_parameters())
    assert len(gains) == 2 * SHAPE["num_layers"] + 1
    for name, before in gains.items():
        assert not torch.equal(params[name].detach(), before), f"{name} did not move"


def test_cpu_model_without_the_interpreter_is_refused():
    """Outside the interpreter a CPU model is refused with an error naming the device, not run on the eager path."""
    script = ("import torch\nfrom impl.nn import TransformerLM\nfrom impl.kernels.fast_lm import use_kernels\n"
              "model = TransformerLM(10, 8, 16, 1, 2, 32)\n"
              "try:\n    use_kernels(model, attention=False, rmsnorm=True)\n"
              "except ValueError as e:\n    assert 'cpu' in str(e), e\nelse:\n    raise SystemExit('accepted')\n")
    env = os.environ | {"TRITON_INTERPRET": "0"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_batch_whose_programs_overflow_one_launch_is_split_over_several(monkeypatch):
    """CUDA's grid holds at most 65,535 batch · head programs on its second axis; past that the kernels run the
    batch in ranges. With the limit lowered to 4 programs, 3 batches of 2 heads run as batches 0-1 and 2, and give
    the single launch's output and gradients exactly."""
    from impl.kernels import flash_triton

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 24, 16, generator=g).to(device()).requires_grad_() for _ in range(3))
    do = torch.randn(3, 2, 24, 16, generator=g).to(device())

    def output_and_gradients():
        for t in (q, k, v):
            t.grad = None
        o = flash_triton.FlashAttentionTriton.apply(q, k, v, True)
        o.backward(do)
        return [o.detach(), q.grad, k.grad, v.grad]

    whole = output_and_gradients()
    monkeypatch.setattr(flash_triton, "MAX_GRID_Y", 4)
    assert [zh for zh, _ in flash_triton.z_chunks([q], 2)] == [4, 2]
    for got, expected in zip(output_and_gradients(), whole):
        assert torch.equal(got, expected)


# The packed operator (impl/kernels/multihead.py, rotary_flash_attention) and its RoPE kernel (impl/kernels/rotary.py).

def packed_projection(z=2, n=29, heads=(4, 2), d=16, dtype=torch.float32, seed=3) -> torch.Tensor:
    """A (Z, N, h + 2 h_kv, d) projection output of normal values, drawn on the CPU."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(z, n, heads[0] + 2 * heads[1], d, generator=g).to(device=device(), dtype=dtype)


def check_rotate_heads(rotary, dtype: torch.dtype, per_sequence: bool) -> None:
    """Heads 0 … r−1 rotated as impl.nn.RotaryEmbedding rotates them (its pairs, its angles), the others copied.
    5 heads of 16 (40 pairs) and 9 of 32 (144): partial tiles."""
    from impl.nn import RotaryEmbedding

    for heads, d in (((3, 1), 16), ((3, 3), 32)):
        x = packed_projection(heads=heads, d=d, dtype=dtype)
        z, n, _, _ = x.shape
        rope = RotaryEmbedding(500.0, d, 64, device=device())
        positions = torch.randint(0, 64, (z, n), generator=torch.Generator().manual_seed(4)).to(device())
        cos, sin = (rope.cos[positions], rope.sin[positions]) if per_sequence else (rope.cos[:n], rope.sin[:n])
        rotated = sum(heads) - heads[1]
        out = rotary.rotate_heads(x, cos, sin, rotated, out=torch.empty_like(x))
        by_head = rope(x[:, :, :rotated].transpose(1, 2), positions[:, None] if per_sequence else None).transpose(1, 2)
        # The PyTorch arithmetic is RotaryEmbedding's own; the kernel's may differ in the last bit: a GPU may fuse a
        # multiply-add, and Triton 3.6's interpreter rounds float32 to bfloat16 toward zero.
        in_pytorch = x.device.type != "cuda" and not rotary.INTERPRETED
        torch.testing.assert_close(out[:, :, :rotated], by_head,
                                   **(dict(rtol=0, atol=0) if dtype == torch.float32 and in_pytorch else {}))
        assert torch.equal(out[:, :, rotated:], x[:, :, rotated:])
        if dtype != torch.float32 and not (dtype == torch.bfloat16 and rotary.INTERPRETED):
            # The kernels' rule (tests/harness/compare.py): against the rotation in float64 of the same inputs and
            # angles, at most 2x RotaryEmbedding's error in the dtype. Not for bfloat16 in Triton 3.6's interpreter,
            # which rounds float32 to bfloat16 toward zero: up to one ulp where rounding to nearest errs half of one
            # (2.00x measured there; 1.00x in PyTorch, the GPU checks the kernel).
            pairs = x[:, :, :rotated].double().unflatten(-1, (-1, 2))  # (z, n, r, d/2, 2)
            c, s = cos.double()[..., None, :], sin.double()[..., None, :]  # (z or 1, n, 1, d/2)
            exact = torch.stack((pairs[..., 0] * c - pairs[..., 1] * s, pairs[..., 0] * s + pairs[..., 1] * c), -1)
            assert_within_rule(out[:, :, :rotated], by_head, exact.flatten(-2), 2, f"rotated heads, {dtype}, d={d}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("per_sequence", [False, True], ids=["shared angles", "angles per sequence"])
@pytest.mark.parametrize("in_triton", [True, False], ids=["kernel", "pytorch"])
def test_rotate_heads_rotates_the_first_heads_and_copies_the_rest(dtype, per_sequence, in_triton, monkeypatch):
    from impl.kernels import rotary

    monkeypatch.setattr(rotary, "INTERPRETED", in_triton)
    check_rotate_heads(rotary, dtype, per_sequence)


def check_gradients_rotated_back(flash_triton, dtype: torch.dtype, d: int, per_sequence: bool) -> None:
    """The Triton backward with RoPE's angles: dQ and dK as without them, then rotated back by the opposite angles
    (impl.nn.RotaryEmbedding's arithmetic, in float32), dV untouched. 29 tokens: partial tiles; d = 48: padding."""
    from impl.nn import RotaryEmbedding

    z, h, n = 2, 3, 29
    g = torch.Generator().manual_seed(6)
    q, k, v, do = (torch.randn(z, h, n, d, generator=g).to(device=device(), dtype=dtype) for _ in range(4))
    o, lse = flash_triton.flash_forward(q, k, v, True)
    rope = RotaryEmbedding(500.0, d, 64, device=device())
    positions = torch.randint(0, 64, (z, n), generator=torch.Generator().manual_seed(7)).to(device())
    cos, sin = (rope.cos[positions], rope.sin[positions]) if per_sequence else (rope.cos[:n], rope.sin[:n])
    plain = flash_triton.flash_backward(q, k, v, o, lse, do, True)
    rotated = flash_triton.flash_backward(q, k, v, o, lse, do, True, angles=(cos, sin))
    by_head = (cos[:, None], sin[:, None]) if per_sequence else (cos, sin)  # (Z, 1, N, d/2) or (N, d/2)
    # bfloat16: the kernel rounds the rotated float32 gradient once, the expected value rounds it twice
    tolerance = {} if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    for name, got, unrotated in zip(("dQ", "dK"), rotated, plain):
        expected = RotaryEmbedding.rotate(unrotated.float(), by_head[0], -by_head[1])
        torch.testing.assert_close(got.float(), expected, **tolerance, msg=lambda m: f"{name}: {m}")
    assert torch.equal(rotated[2], plain[2]), "dV changed"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("d", [16, 48])
@pytest.mark.parametrize("per_sequence", [False, True], ids=["shared angles", "angles per sequence"])
def test_the_triton_backward_stores_dq_and_dk_rotated_back(dtype, d, per_sequence):
    from impl.kernels import flash_triton

    check_gradients_rotated_back(flash_triton, dtype, d, per_sequence)


def use_triton_attention(monkeypatch) -> None:
    """The packed operator on the Triton FlashAttention-2 kernels (interpreted on a CPU), not the PyTorch one."""
    from impl.kernels import flash_triton, multihead

    monkeypatch.setattr(multihead, "functions_for", lambda _: (flash_triton.flash_forward, flash_triton.flash_backward))


@pytest.mark.parametrize("options", [{}, dict(num_kv_heads=2)], ids=["multi-head", "grouped-query"])
def test_the_packed_operator_on_the_triton_kernels_gives_the_reference_loss_and_gradients(options, monkeypatch):
    """What the LM runs on a GPU: RoPE in its kernel, dQ, dK and dV written into one packed gradient."""
    use_triton_attention(monkeypatch)
    check_same_training_signal(attention=True, rmsnorm=False, **options)


def check_attention_at_token_positions(num_kv_heads: int | None = None) -> None:
    """The fused attention of one layer at per-sequence token positions: the reference layer's output and gradients."""
    from impl.kernels.multihead import rotary_flash_attention
    from impl.nn import MultiHeadSelfAttention, RotaryEmbedding

    torch.manual_seed(0)
    reference = MultiHeadSelfAttention(64, 4, RotaryEmbedding(500.0, 16, 64, device=device()),
                                       num_kv_heads=num_kv_heads, device=device())
    fused = copy.deepcopy(reference)
    fused.fused_attention = rotary_flash_attention
    x = torch.randn(3, 29, 64, device=device(), requires_grad=True)
    positions = torch.randint(0, 64, (3, 29), generator=torch.Generator().manual_seed(5)).to(device())
    dy = torch.randn(3, 29, 64, device=device())
    results = []
    for layer in (reference, fused):
        y = layer(x, token_positions=positions)
        results.append((y, *torch.autograd.grad(y, (x, *layer.parameters()), dy)))
    for name, got, want in zip(["output", "dx", *dict(reference.named_parameters())], results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=2e-5, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("num_kv_heads", [None, 1])
def test_the_packed_operator_at_token_positions_gives_the_reference_output_and_gradients(num_kv_heads, monkeypatch):
    use_triton_attention(monkeypatch)
    check_attention_at_token_positions(num_kv_heads)


@pytest.mark.parametrize("shape, num_heads, angles, message", [
    ((2, 8, 10, 16), 4, (8, 8), "twice a number of key/value heads"),
    ((2, 8, 7, 16), 4, (8, 8), "twice a number of key/value heads"),
    ((8, 12, 16), 4, (8, 8), "(Z, N, h + 2 h_kv, d)"),
    ((2, 8, 12, 16), 4, (7, 8), "(N, d/2) or (Z, N, d/2)"),
    ((2, 8, 12, 16), 4, (3, 8, 8), "(N, d/2) or (Z, N, d/2)"),
])
def test_the_packed_operator_refuses_what_it_cannot_take(shape, num_heads, angles, message):
    from impl.kernels.multihead import rotary_flash_attention

    angle = torch.zeros(angles, device=device())
    with pytest.raises(ValueError, match=re.escape(message)):
        rotary_flash_attention(torch.zeros(shape, device=device()), angle, angle, num_heads)


ROTARY_MUTANTS = {  # impl/kernels/rotary.py, one line each
    "a pair's elements swapped (its odd element first)": (
        "y = pack_pair(even * cos - odd * sin, even * sin + odd * cos, ELEMENT)",
        "y = pack_pair(even * sin + odd * cos, even * cos - odd * sin, ELEMENT)"),
    "rotated by the opposite angle": ("sin = tl.load(SIN + angle, mask=angle_mask, other=0.0)[:, None, :]",
                                      "sin = -tl.load(SIN + angle, mask=angle_mask, other=0.0)[:, None, :]"),
    "the first value head rotated too": ("rotate = (heads < rotated_heads)[None, :, None]",
                                         "rotate = (heads < rotated_heads + 1)[None, :, None]"),
    "the first sequence's angles for all": ("stride_cz = cos3.stride(0) if cos3.shape[0] > 1 else 0", "stride_cz = 0"),
    "a 16-bit word's low half sign-extended over the high half": (
        "low = even.to(dtype).to(tl.uint16, bitcast=True).to(tl.int32)",
        "low = even.to(dtype).to(tl.int16, bitcast=True).to(tl.int32)"),
    "a float32 pair's odd element read from the even one's bits": ("odd = (word >> 32).to(tl.int32)",
                                                                    "odd = (word >> 0).to(tl.int32)"),
}


ROTATE_BACK_MUTANTS = {  # impl/kernels/flash_triton.py, one line each
    "rotated forward, not back": (
        "tl.join(even * cos + odd * sin, odd * cos - even * sin)",
        "tl.join(even * cos - odd * sin, odd * cos + even * sin)"),
    "a pair's elements swapped": (
        "tl.join(even * cos + odd * sin, odd * cos - even * sin)",
        "tl.join(odd * cos - even * sin, even * cos + odd * sin)"),
    "dK not rotated": ("dk = rotate_back(dk,", "dk = dk + 0 * rotate_back(dk,"),
    "the first sequence's angles for all": ("angle_strides = (cos3.stride(0), cos3.stride(1))",
                                            "angle_strides = (0, cos3.stride(1))"),
    "the first sequence's angles for dQ": ("dq = rotate_back(dq, COS + angles, SIN + angles,",
                                           "dq = rotate_back(dq, COS, SIN,"),
    "each key's angles one position late": ("dk = rotate_back(dk, COS + angles, SIN + angles, stride_cn, offs_n,",
                                            "dk = rotate_back(dk, COS + angles, SIN + angles, stride_cn, offs_n + 1,"),
}


ROPE_MUTANTS = {"rotary": ROTARY_MUTANTS, "flash_triton": ROTATE_BACK_MUTANTS}


@pytest.mark.parametrize("module, mutant", [(module, mutant) for module, mutants in ROPE_MUTANTS.items()
                                            for mutant in mutants])
def test_each_rope_kernel_mutant_is_rejected(module, mutant, monkeypatch):
    """RoPE's kernels: the rotation of q and k (impl/kernels/rotary.py) and of their gradients back, as the attention
    backward stores them (impl/kernels/flash_triton.py)."""
    from impl.kernels import flash_triton, multihead, rotary

    mutated = source_mutant({"rotary": rotary, "flash_triton": flash_triton}[module], *ROPE_MUTANTS[module][mutant])
    if module == "rotary":
        monkeypatch.setattr(multihead, "rotate_heads", mutated.rotate_heads)
        use_triton_attention(monkeypatch)
    else:
        monkeypatch.setattr(multihead, "functions_for", lambda _: (mutated.flash_forward, mutated.flash_backward))
    with pytest.raises(AssertionError):
        for per_sequence in (False, True):
            if module == "rotary":
                for dtype in (torch.float32, torch.bfloat16):
                    check_rotate_heads(mutated, dtype, per_sequence)
            else:
                check_gradients_rotated_back(mutated, torch.float32, 48, per_sequence)
        check_same_training_signal(attention=True, rmsnorm=False)
        check_attention_at_token_positions()
