"""The LM on the Triton kernels (impl/kernels/fast_lm.py) computes the reference LM's loss and gradients.

On a CPU the kernels run through Triton's interpreter (tests/conftest.py turns it on), at a
tiny size; on a GPU the same swap is what the training program's kernel switch does.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch

from impl.kernels.fast_lm import use_kernels, uses_kernels
from impl.nn import TransformerLM
from impl.kernels.rmsnorm import INTERPRETED, RMSNormTriton
from impl.train import cross_entropy
from tests.harness.compare import assert_close
from tests.harness.helpers import REPO

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
    if attention_kernel is not None:
        for layer in fast.layers:
            layer.attn.attention_kernel = attention_kernel
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
