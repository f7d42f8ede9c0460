"""impl.kernels.linear_cross_entropy against its oracle, the reference loss on the LM head's logits,
cross_entropy(hidden @ weightᵀ, targets): the loss and both gradients, across chunk boundaries, in float32, under
bfloat16 autocast by the kernels' rule against float64, compiled, with the vocabulary padded or not and with logits
past exp's range; and one-line changes of the kernel's source (its mutants) rejected by those checks. Each check runs
on both ways a chunk's softmax and gradient are computed: the Triton kernel (interpreted here) and the PyTorch
arithmetic used off the GPU without the interpreter. Speed and memory are the benchmark's."""

from __future__ import annotations

import functools

import pytest
import torch

import impl.kernels.linear_cross_entropy
from impl.kernels.linear_cross_entropy import CHUNK_ELEMENTS, VOCAB_ALIGNMENT, default_chunk_rows, \
    linear_cross_entropy
from impl.train import cross_entropy
from tests.harness.compare import assert_within_rule
from tests.harness.helpers import source_mutant

VOCAB, D = 97, 24
CPU = torch.device("cpu")


def inputs(rows: int = 3 * 11, seed: int = 0, vocab: int = VOCAB, scale: float = 1.0, device: torch.device = CPU):
    """hidden (3, rows/3, D) times ``scale``, the LM head's weight (vocab, D), targets at both vocabulary ends."""
    g = torch.Generator().manual_seed(seed)
    hidden = (scale * torch.randn(3, rows // 3, D, generator=g)).to(device).requires_grad_()
    weight = (torch.randn(vocab, D, generator=g) / D**0.5).to(device).requires_grad_()
    targets = torch.randint(0, vocab, (3, rows // 3), generator=g)
    targets[0, 0], targets[-1, -1] = 0, vocab - 1
    return hidden, weight, targets.to(device)


def loss_and_grads(loss_fn, hidden, weight, targets):
    hidden.grad = weight.grad = None
    loss = loss_fn(hidden, weight, targets)
    (2.5 * loss).backward()  # a scale on the loss reaches the gradients
    return loss.detach(), hidden.grad.clone(), weight.grad.clone()


def reference(hidden, weight, targets):
    return cross_entropy(hidden @ weight.T, targets)


def assert_matches_reference(loss_fn=linear_cross_entropy, chunk_rows: int | None = 7, device: torch.device = CPU,
                             **case) -> None:
    """The loss and both gradients of ``loss_fn(hidden, weight, targets, chunk_rows)`` are the reference's, for the
    inputs ``case`` describes (see ``inputs``)."""
    hidden, weight, targets = inputs(**case, device=device)
    expected = loss_and_grads(reference, hidden, weight, targets)
    got = loss_and_grads(lambda h, w, t: loss_fn(h, w, t, chunk_rows), hidden, weight, targets)
    assert got[2].shape == weight.shape
    for name, value, want in zip(("loss", "d hidden", "d weight"), got, expected):
        torch.testing.assert_close(value, want, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name} ({case}): {m}")


# The cases the mutants below must fail at least one of: chunks that do not divide the rows, a vocabulary the
# kernel pads (97 words) and one it does not, one the Triton kernel takes in several blocks, the last partial (300
# words), and logits far past exp's float32 range (about ±88).
CASES = [dict(), dict(vocab=VOCAB_ALIGNMENT), dict(vocab=300), dict(scale=300.0)]
PATHS = ["triton", "pytorch"]


@pytest.fixture(params=PATHS, ids=["Triton kernel", "PyTorch"])
def path(request, monkeypatch) -> torch.device:
    """The device of a way a chunk's softmax and gradient are computed, for the test's duration."""
    return on_path(impl.kernels.linear_cross_entropy, request.param, monkeypatch)


def on_path(module, path: str, monkeypatch) -> torch.device:
    """Where ``module`` computes the chunks ``path``'s way: the Triton kernel compiled on CUDA tensors in a GPU run of
    the suite (TRITON_INTERPRET unset), else interpreted on CPU tensors; PyTorch on CPU tensors, uninterpreted."""
    if path == "triton" and not module.INTERPRETED:
        if not torch.cuda.is_available():  # as tests/programs/test_fast_lm.py
            pytest.skip("the Triton kernel needs a GPU or TRITON_INTERPRET=1 before impl is imported")
        return torch.device("cuda")
    monkeypatch.setattr(module, "INTERPRETED", path == "triton")
    return CPU


@pytest.mark.parametrize("chunk_rows", [None, 1, 7, 33, 40])
def test_loss_and_gradients_are_the_reference_ones_whatever_the_chunks(chunk_rows, path):
    assert_matches_reference(chunk_rows=chunk_rows, device=path)


@pytest.mark.parametrize("case", CASES + [dict(vocab=v) for v in (1, 2, VOCAB_ALIGNMENT - 1, VOCAB_ALIGNMENT + 1)],
                         ids=repr)
def test_any_vocabulary_padded_or_not_and_large_logits(case, path):
    assert_matches_reference(**case, device=path)


def assert_within_rule_under_autocast(loss_fn=linear_cross_entropy, device: torch.device = CPU, **case) -> None:
    """Under bfloat16 autocast, the kernels' rule (tests/harness/compare.py): the error against float64 at most 2x
    (the loss) and 3x (the gradients) PyTorch's own, the reference loss under the same autocast."""
    hidden, weight, targets = inputs(**case, device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        baseline = loss_and_grads(reference, hidden, weight, targets)
        got = loss_and_grads(lambda h, w, t: loss_fn(h, w, t, 7), hidden, weight, targets)
    assert got[1].dtype == hidden.dtype and got[2].dtype == weight.dtype
    # The truth: float64 arithmetic on the inputs as autocast rounds them for the LM head's product.
    rounded = [x.detach().to(torch.bfloat16).double().requires_grad_() for x in (hidden, weight)]
    truth = loss_and_grads(reference, *rounded, targets)
    for name, value, pt, exact, factor in zip(("loss", "d hidden", "d weight"), got, baseline, truth, (2, 3, 3)):
        assert_within_rule(value, pt, exact, factor, f"{name} ({case})")


AUTOCAST_CASES = [dict(), dict(vocab=VOCAB_ALIGNMENT, rows=3 * 40)]


# One change each to impl/kernels/linear_cross_entropy.py's source, (original, replacement, the path it is on): the
# checks above must reject every one (the kernel's mutants, as tests/kit/mutants holds the spec components').
MUTANTS = {
    # the Triton kernel
    "padded words take part in the kernel's softmax": ("x = tl.where(offs < n_words, x, float(\"-inf\"))", "",
                                                       "triton"),
    "the online sum not rescaled to a new max": ("s = s * tl.math.exp2((m - m_finite) * LOG2E) +", "s = s +",
                                                 "triton"),
    "a lane's words shifted by the lane's first max": ("tl.math.exp2((x - m_finite[:, None]) * LOG2E)",
                                                       "tl.math.exp2((x - m[:, None]) * LOG2E)", "triton"),
    "the kernel's softmax not max-shifted": ("tl.fma(x - row_max, LOG2E, -log2_normalizer)",
                                             "tl.fma(x, LOG2E, -log2_normalizer)", "triton"),
    "the block of the last words left unmasked": ("N_FULL=n_words // block", "N_FULL=triton.cdiv(n_words, block)",
                                                  "triton"),
    "every row given the first row's target": ("target = tl.load(TARGETS + row)", "target = tl.load(TARGETS)",
                                               "triton"),
    "the kernel's gradient of the summed loss": ("tl.fma(softmax, scale, -tl.where(offs == target, scale, 0.0))",
                                                 "softmax - tl.where(offs == target, 1.0, 0.0)", "triton"),
    "the last, partial block of words left out": ("N_BLOCKS=triton.cdiv(width, block)", "N_BLOCKS=width // block",
                                                  "triton"),
    # the chunk loop both paths share
    "the last, partial chunk dropped": ("range(0, rows, chunk_rows)", "range(0, rows - chunk_rows + 1, chunk_rows)",
                                       "triton"),
    "dW of the last chunk only": ("grad_weight += (grad_logits.T @ h_c).float()",
                                  "grad_weight.copy_((grad_logits.T @ h_c).float())", "triton"),
    "the gradient of the loss's scale ignored": ("(grad_hidden * grad_loss)", "grad_hidden", "triton"),
    # the PyTorch arithmetic
    "padded words take part in the softmax": ("logits.masked_fill(padded_word, -torch.inf)", "logits", "pytorch"),
    "the gradient of the summed loss, not the mean": ("/ rows).to(", ").to(", "pytorch"),
    "no max shift: exp overflows": ("shifted = logits - logits.amax(dim=-1, keepdim=True)", "shifted = logits",
                                    "pytorch"),
    "the one-hot on other rows' targets": ("== t_c[:, None]", "== t_c.flip(0)[:, None]", "pytorch"),
    "the softmax in the compute dtype (bfloat16 under autocast)": ("logits = (h_c @ w.T).float()",
                                                                   "logits = h_c @ w.T", "pytorch"),
}


@pytest.mark.parametrize("mutant", MUTANTS)
def test_the_checks_reject_the_kernels_mutant(mutant, monkeypatch):
    *change, path = MUTANTS[mutant]
    module = source_mutant(impl.kernels.linear_cross_entropy, *change)
    device = on_path(module, path, monkeypatch)
    broken = module.linear_cross_entropy
    checks = [functools.partial(assert_matches_reference, broken, device=device, **case) for case in CASES]
    checks += [functools.partial(assert_within_rule_under_autocast, broken, device=device, **case)
               for case in AUTOCAST_CASES]
    failures = []
    for check in checks:
        try:
            check()
        except AssertionError as failure:
            failures.append(failure)
    assert failures, f"mutant {mutant!r} passed every check"


@pytest.mark.parametrize("vocab_size", [1, 256, 10_000, 50_257, 65_536, 151_936, CHUNK_ELEMENTS, 3 * CHUNK_ELEMENTS])
def test_the_default_chunk_is_the_largest_power_of_two_of_rows_within_the_logit_budget(vocab_size):
    rows = default_chunk_rows(vocab_size)
    assert rows & (rows - 1) == 0, f"{rows} rows is not a power of two"
    assert rows == 1 or rows * vocab_size <= CHUNK_ELEMENTS, f"{rows} rows × {vocab_size} words exceed the budget"
    assert 2 * rows * vocab_size > CHUNK_ELEMENTS, f"{2 * rows} rows would fit too"


@pytest.mark.parametrize("case", AUTOCAST_CASES, ids=repr)
def test_under_bfloat16_autocast_within_the_kernels_rule(case, path):
    assert_within_rule_under_autocast(**case, device=path)


def test_compiled_as_eager(path):
    hidden, weight, targets = inputs(device=path)
    expected = loss_and_grads(lambda h, w, t: linear_cross_entropy(h, w, t, 7), hidden, weight, targets)
    compiled = torch.compile(lambda h, w, t: linear_cross_entropy(h, w, t, 7), backend="aot_eager", fullgraph=True)
    for value, want in zip(loss_and_grads(compiled, hidden, weight, targets), expected):
        torch.testing.assert_close(value, want, rtol=1e-6, atol=1e-7)


def test_mismatched_shapes_are_refused_naming_them():
    hidden, weight, targets = inputs()
    with pytest.raises(ValueError, match=r"hidden \(3, 11, 24\), weight \(97, 24\) and targets \(3, 10\) disagree"):
        linear_cross_entropy(hidden, weight, targets[:, :10])


def test_without_gradients_the_loss_alone(path):
    """Under no_grad (the trainer's evaluation) the same loss, and no gradient work is kept."""
    hidden, weight, targets = inputs(device=path)
    with torch.no_grad():
        loss = linear_cross_entropy(hidden, weight, targets, 7)
        torch.testing.assert_close(loss, reference(hidden, weight, targets), rtol=1e-6, atol=1e-7)
    assert loss.grad_fn is None
