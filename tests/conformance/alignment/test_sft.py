"""Conformance of the SFT helpers (spec/alignment.py; handout A5 §4.2): tokenize_prompt_and_output, compute_entropy,
get_response_log_probs, masked_mean, masked_normalize, sft_microbatch_train_step.

Oracles: the formulas written out plainly here in float64 (log-softmax, −Σ p log p, masked sums), the tokenizer's own
ids for each string taken separately, and a tiny randomly initialised Llama model's logits. Properties (hypothesis):
masked positions never matter, whatever they hold.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conformance.alignment.hf import gpt2_tokenizer, tiny_llama
from tests.harness.helpers import randn

PROPERTY = settings(max_examples=40, deadline=None)
PROMPTS = ["What is 2 + 2?", "The cat sat on the ma", "Hi"]
OUTPUTS = [" It is 4.", "t.", " there, my friend; how are you today?"]


def expected_tokenization(prompts, outputs, tokenizer):
    """The handout's construction written out: separate ids, concatenated, right-padded, shifted by one."""
    rows = [(tokenizer.encode(p, add_special_tokens=False), tokenizer.encode(o, add_special_tokens=False))
            for p, o in zip(prompts, outputs)]
    length = max(len(p) + len(o) for p, o in rows)
    ids, mask = [], []
    for p, o in rows:
        ids.append(p + o + [tokenizer.pad_token_id] * (length - len(p) - len(o)))
        mask.append([0] * len(p) + [1] * len(o) + [0] * (length - len(p) - len(o)))
    ids, mask = torch.tensor(ids), torch.tensor(mask)
    return {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "response_mask": mask[:, 1:]}


@pytest.mark.component("tokenize_prompt_and_output")
def test_tokenize_prompt_and_output(impl):
    """Prompt and output ids separately, concatenated, right-padded with the pad id; inputs without the last column,
    labels without the first; the mask is 1 exactly on the response labels."""
    tokenizer = gpt2_tokenizer()
    got = impl.tokenize_prompt_and_output(PROMPTS, OUTPUTS, tokenizer)
    expected = expected_tokenization(PROMPTS, OUTPUTS, tokenizer)
    for key in ("input_ids", "labels"):
        assert torch.equal(got[key].long().cpu(), expected[key]), f"{key}: {got[key]}\nexpected {expected[key]}"
    assert torch.equal(got["response_mask"].long().cpu(), expected["response_mask"]), (
        f"response_mask: {got['response_mask']}\nexpected {expected['response_mask']}")


@pytest.mark.component("tokenize_prompt_and_output")
def test_tokenize_prompt_and_output_separately_not_jointly(impl):
    """A prompt ending in the middle of a word: its output's tokens are the output's own, not those of the joint
    string (the seam differs: "ma" + "t." is not "mat.")."""
    tokenizer = gpt2_tokenizer()
    prompt, output = "The cat sat on the ma", "t."
    joint = tokenizer.encode(prompt + output, add_special_tokens=False)
    separate = tokenizer.encode(prompt, add_special_tokens=False) + tokenizer.encode(output, add_special_tokens=False)
    assert joint != separate  # the case shows the difference
    got = impl.tokenize_prompt_and_output([prompt], [output], tokenizer)
    assert got["labels"][0].tolist() == separate[1:]
    assert got["response_mask"][0].long().sum().item() == len(tokenizer.encode(output, add_special_tokens=False))


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=24)


@PROPERTY
@given(pairs=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=4))
@pytest.mark.component("tokenize_prompt_and_output")
def test_tokenize_prompt_and_output_any_strings(impl, pairs):
    """For any prompts and outputs (any Unicode, whitespace, lengths), the construction written out: separate ids,
    concatenated, right-padded, shifted, the mask on the response labels."""
    prompts, outputs = [p for p, _ in pairs], [o for _, o in pairs]
    tokenizer = gpt2_tokenizer()
    got = impl.tokenize_prompt_and_output(prompts, outputs, tokenizer)
    expected = expected_tokenization(prompts, outputs, tokenizer)
    for key in expected:
        assert torch.equal(got[key].long().cpu(), expected[key]), f"{key}: {got[key]}\nexpected {expected[key]}"


@pytest.mark.strict
@pytest.mark.component("tokenize_prompt_and_output")
def test_tokenize_prompt_and_output_types(impl):
    """(strict) int64 ids and labels, a bool response mask."""
    got = impl.tokenize_prompt_and_output(PROMPTS, OUTPUTS, gpt2_tokenizer())
    assert got["input_ids"].dtype == got["labels"].dtype == torch.int64
    assert got["response_mask"].dtype == torch.bool


def entropy_oracle(logits: torch.Tensor) -> torch.Tensor:
    log_p = torch.log_softmax(logits.double(), dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


@pytest.mark.component("compute_entropy")
def test_compute_entropy(impl, device):
    """−Σ p log p over the vocabulary at each position: shape (B, T)."""
    logits = randn(2, 5, 40, seed=1, device=device, scale=3.0)
    got = impl.compute_entropy(logits)
    assert got.shape == (2, 5)
    torch.testing.assert_close(got.double(), entropy_oracle(logits), rtol=1e-5, atol=1e-5)


@pytest.mark.component("compute_entropy")
def test_compute_entropy_large_logits(impl, device):
    """Stable: logits ×1000 give the exact entropies, finite; one dominant logit gives entropy 0."""
    logits = randn(3, 4, 30, seed=2, device=device) * 1000
    got = impl.compute_entropy(logits)
    assert torch.isfinite(got).all(), got
    torch.testing.assert_close(got.double(), entropy_oracle(logits), rtol=1e-4, atol=1e-4)
    one_hot = torch.full((1, 20), -1e4, device=device)
    one_hot[0, 3] = 1e4
    assert impl.compute_entropy(one_hot).abs().max().item() < 1e-6


@pytest.mark.component("compute_entropy")
def test_compute_entropy_uniform(impl, device):
    """Equal logits: the entropy is log V, for logits of any size."""
    for value in (0.0, 50.0, -300.0):
        got = impl.compute_entropy(torch.full((2, 3, 64), value, device=device))
        torch.testing.assert_close(got.double().cpu(), torch.full((2, 3), math.log(64), dtype=torch.float64),
                                   rtol=1e-4, atol=1e-4)


def scored_batch(device):
    tokenizer = gpt2_tokenizer()
    batch = expected_tokenization(PROMPTS, OUTPUTS, tokenizer)
    return batch["input_ids"].to(device), batch["labels"].to(device)


@pytest.mark.component("get_response_log_probs")
def test_get_response_log_probs(impl, device):
    """log p(label | prefix) from model(input_ids).logits, with the token entropy, against the written-out formula."""
    model = tiny_llama(0, device)
    input_ids, labels = scored_batch(device)
    got = impl.get_response_log_probs(model, input_ids, labels, True)
    with torch.no_grad():
        logits = model(input_ids).logits.double()
    expected = torch.log_softmax(logits, -1).gather(-1, labels[..., None]).squeeze(-1)
    assert got["log_probs"].shape == labels.shape
    torch.testing.assert_close(got["log_probs"].double(), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got["token_entropy"].double(), entropy_oracle(logits), rtol=1e-4, atol=1e-4)


@pytest.mark.component("get_response_log_probs")
def test_get_response_log_probs_gradients_reach_the_model(impl, device):
    """The log-probs are differentiable: their sum's gradient reaches the model's parameters."""
    model = tiny_llama(1, device)
    input_ids, labels = scored_batch(device)
    impl.get_response_log_probs(model, input_ids, labels)["log_probs"].sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.strict
@pytest.mark.component("get_response_log_probs")
def test_get_response_log_probs_without_entropy(impl, device):
    """(strict) return_token_entropy=False: no "token_entropy" key."""
    input_ids, labels = scored_batch(device)
    got = impl.get_response_log_probs(tiny_llama(0, device), input_ids, labels, False)
    assert "token_entropy" not in got, sorted(got)


def masked_mean_oracle(tensor, mask, dim):
    mask = mask.double()
    if dim is None:
        return (tensor.double() * mask).sum() / mask.sum()
    return (tensor.double() * mask).sum(dim) / mask.sum(dim)


MASK = torch.tensor([[1, 1, 0, 0, 1], [0, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)


@pytest.mark.component("masked_mean")
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
def test_masked_mean(impl, device, dim):
    """The mean over the masked elements, along dim (or over all)."""
    x = randn(3, 5, seed=3, device=device)
    got = impl.masked_mean(x, MASK.to(device), dim)
    expected = masked_mean_oracle(x, MASK.to(device), dim)
    assert got.shape == expected.shape
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.component("masked_mean")
def test_masked_mean_handout_example(impl):
    """The handout's length-normalization example: masked means 2 and 2; gradients 1/4 on the 4 tokens and 1/7."""
    ratio = torch.ones(2, 7, requires_grad=True)
    masks = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1] * 7])
    result = impl.masked_mean(ratio * 2, masks, dim=1)
    torch.testing.assert_close(result.detach(), torch.tensor([2.0, 2.0]))
    result.mean().backward()
    expected = torch.tensor([[0.25] * 4 + [0.0] * 3, [1 / 7] * 7])
    torch.testing.assert_close(ratio.grad, expected)


# What masked-out positions hold in the property tests: finite values at the course level (a plain tensor · mask
# is right there); NaN and inf at the strict level, where the spec asks that they never leak (0 · NaN is NaN).
FINITE_FILLS = [0.0, 1e30, -1e30, -7.0, 123.0]
NON_FINITE_FILLS = [float("nan"), float("inf"), float("-inf")]


def check_masked_mean_ignores(impl, fill, dim, seed):
    x = randn(3, 5, seed=seed, device="cpu")
    filled = torch.where(MASK, x, torch.full_like(x, fill)).requires_grad_()
    got = impl.masked_mean(filled, MASK, dim)
    torch.testing.assert_close(got.double(), masked_mean_oracle(x, MASK, dim), rtol=1e-6, atol=1e-6)
    got.sum().backward()
    assert (filled.grad[~MASK] == 0).all(), filled.grad


@PROPERTY
@given(fill=st.sampled_from(FINITE_FILLS), dim=st.sampled_from([None, 1]), seed=st.integers(0, 1000))
@pytest.mark.component("masked_mean")
def test_masked_mean_ignores_masked_positions(impl, fill, dim, seed):
    """Whatever finite values the masked-out positions hold, the result is the same and they get no gradient."""
    check_masked_mean_ignores(impl, fill, dim, seed)


@pytest.mark.strict
@PROPERTY
@given(fill=st.sampled_from(NON_FINITE_FILLS), dim=st.sampled_from([None, 1]), seed=st.integers(0, 1000))
@pytest.mark.component("masked_mean")
def test_masked_mean_ignores_non_finite_masked_positions(impl, fill, dim, seed):
    """(strict) NaN or inf at masked-out positions leaks neither into the result nor into the gradient."""
    check_masked_mean_ignores(impl, fill, dim, seed)


@pytest.mark.strict
@pytest.mark.component("masked_mean")
def test_masked_mean_empty_mask_is_nan(impl):
    """(strict) An empty mask gives NaN (0/0), as the formula does, not a made-up 0."""
    got = impl.masked_mean(torch.ones(2, 3), torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool), 1)
    assert got[0].item() == 1.0 and math.isnan(got[1].item()), got


@pytest.mark.component("masked_normalize")
@pytest.mark.parametrize("dim", [None, 0, 1])
def test_masked_normalize(impl, device, dim):
    """The masked sum along dim (or over all), divided by the constant (keywords, as the course's adapter orders the
    arguments differently)."""
    x = randn(3, 5, seed=4, device=device)
    got = impl.masked_normalize(tensor=x, mask=MASK.to(device), normalize_constant=3.5, dim=dim)
    masked = x.double() * MASK.to(device).double()
    expected = (masked.sum() if dim is None else masked.sum(dim)) / 3.5
    assert got.shape == expected.shape
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.component("masked_normalize")
def test_masked_normalize_handout_example(impl):
    """The handout's example: 1.1429 and 2.0 with constant 7; gradient 1/7 on every unmasked token."""
    ratio = torch.ones(2, 7, requires_grad=True)
    masks = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1] * 7])
    result = impl.masked_normalize(tensor=ratio * 2, mask=masks, normalize_constant=7, dim=1)
    torch.testing.assert_close(result.detach(), torch.tensor([8 / 7, 2.0]))
    result.mean().backward()
    torch.testing.assert_close(ratio.grad, torch.tensor([[1 / 7] * 4 + [0.0] * 3, [1 / 7] * 7]))


def check_masked_normalize_ignores(impl, fill, seed):
    x = randn(3, 5, seed=seed, device="cpu")
    filled = torch.where(MASK, x, torch.full_like(x, fill)).requires_grad_()
    got = impl.masked_normalize(tensor=filled, mask=MASK, normalize_constant=2.0, dim=1)
    torch.testing.assert_close(got.double(), (x.double() * MASK).sum(1) / 2.0, rtol=1e-6, atol=1e-6)
    got.sum().backward()
    assert (filled.grad[~MASK] == 0).all(), filled.grad


@PROPERTY
@given(fill=st.sampled_from(FINITE_FILLS), seed=st.integers(0, 1000))
@pytest.mark.component("masked_normalize")
def test_masked_normalize_ignores_masked_positions(impl, fill, seed):
    """Whatever finite values the masked-out positions hold, the sum is the same and they get no gradient."""
    check_masked_normalize_ignores(impl, fill, seed)


@pytest.mark.strict
@PROPERTY
@given(fill=st.sampled_from(NON_FINITE_FILLS), seed=st.integers(0, 1000))
@pytest.mark.component("masked_normalize")
def test_masked_normalize_ignores_non_finite_masked_positions(impl, fill, seed):
    """(strict) NaN or inf at masked-out positions leaks neither into the sum nor into the gradient."""
    check_masked_normalize_ignores(impl, fill, seed)


def sft_oracle(log_probs, mask, steps, constant):
    return -(log_probs.double() * mask.double()).sum(-1).div(constant).mean() / steps


@pytest.mark.component("sft_microbatch_train_step")
@pytest.mark.parametrize("steps, constant", [(1, 1.0), (4, 1.0), (2, 3.0)])
def test_sft_microbatch_train_step(impl, device, steps, constant):
    """loss = −Σ masked log-probs / normalize_constant / batch size / gradient_accumulation_steps; backward called:
    the gradient is that of the same formula."""
    log_probs = (-randn(4, 6, seed=5, device=device).abs()).requires_grad_()
    mask = (randn(4, 6, seed=6, device=device) > 0)
    loss, metadata = impl.sft_microbatch_train_step(log_probs, mask, steps, constant)
    assert isinstance(metadata, dict)
    reference = log_probs.detach().double().requires_grad_()
    expected = sft_oracle(reference, mask, steps, constant)
    expected.backward()
    torch.testing.assert_close(loss.detach().double().reshape(()), expected.detach(), rtol=1e-5, atol=1e-6)
    assert log_probs.grad is not None, "the step must call loss.backward()"
    torch.testing.assert_close(log_probs.grad.double(), reference.grad, rtol=1e-5, atol=1e-7)


@PROPERTY
@given(fill=st.sampled_from(FINITE_FILLS), seed=st.integers(0, 1000))
@pytest.mark.component("sft_microbatch_train_step")
def test_sft_microbatch_train_step_ignores_masked_positions(impl, fill, seed):
    """Padding and prompt positions, whatever finite log-probs they hold, change neither the loss nor get a
    gradient."""
    x = -randn(3, 5, seed=seed, device="cpu").abs()
    filled = torch.where(MASK, x, torch.full_like(x, fill)).requires_grad_()
    loss, _ = impl.sft_microbatch_train_step(filled, MASK, 2)
    torch.testing.assert_close(loss.detach().double().reshape(()), sft_oracle(x, MASK, 2, 1.0), rtol=1e-5, atol=1e-6)
    assert (filled.grad[~MASK] == 0).all(), filled.grad
