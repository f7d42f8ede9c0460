"""Conformance of decoding (spec/decode.py, handout A1 §6): temperature, top-p, the generation loop.

Oracles: the handout's formulas written out in float64 (softmax(v/τ), then V(p) by sorting),
against which the samples are checked by a chi-square test; a slow, obviously-correct greedy
loop; and toy models written here, whose next token is known and which record what they are
fed. Every draw uses a seeded generator, so each test is deterministic; a chi-square test would
reject a correct sampler with probability ALPHA for a given seed.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch
from torch import nn

# A toy next-token distribution with distinct probabilities, two of them tied (ids 0 and 5), in
# no particular order, so that sorting matters. Sorted: 0.4 (1), 0.25 (3), 0.15 (4), 0.1 (2),
# 0.05 (0), 0.05 (5); running totals 0.4, 0.65, 0.8, 0.9, 0.95, 1.
TOY_PROBS = [0.05, 0.4, 0.1, 0.25, 0.15, 0.05]
TOY_LOGITS = torch.log(torch.tensor(TOY_PROBS)) + 3.0  # unnormalized: softmax is shift invariant
SAMPLES = 20_000
ALPHA = 1e-4  # false-rejection rate of each chi-square test

# (temperature, top_p) -> what the case pins. Every V(p) cut is ≥ 0.01 away from p in total mass.
NUCLEUS_CASES = {
    "softmax": (1.0, 1.0),  # no filtering: the plain softmax
    "temperature-0.5": (0.5, 1.0),  # softmax(v / 0.5): sharper
    "temperature-2": (2.0, 1.0),  # softmax(v / 2): flatter
    "top-p-0.6": (1.0, 0.6),  # V = {1, 3}: 0.4 < 0.6 ≤ 0.65, the token that crosses p is kept
    "top-p-tie-at-the-cut": (1.0, 0.92),  # V = {1, 3, 4, 2, 0}: of the tied ids 0 and 5, the lower one
    "temperature-then-top-p": (2.0, 0.75),  # V(p) of softmax(v / 2) is {1, 3, 4, 2}; of softmax(v), {1, 3, 4}
}


# ---------------------------------------------------------------------------------------------
# Oracles and helpers


def nucleus_oracle(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """P(next = i), float64, written from the handout: q = softmax(v/τ); V(p) is the smallest set of
    the most probable ids (ties: lower id first) whose total is ≥ p; q renormalized on V(p)."""
    v = logits.double().cpu()
    q = torch.exp(v / temperature - (v / temperature).max())
    q = q / q.sum()
    if top_p == 1:
        return q
    kept, total = [], 0.0
    for i in sorted(range(len(q)), key=lambda i: (-q[i].item(), i)):
        kept.append(i)
        total += q[i].item()
        if total >= top_p:
            break
    probs = torch.zeros_like(q)
    probs[kept] = q[kept] / q[kept].sum()
    return probs


def chi_square_quantile(dof: int, alpha: float = ALPHA) -> float:
    """The 1 − alpha quantile of χ²(dof), by the Wilson–Hilferty approximation."""
    z = NormalDist().inv_cdf(1 - alpha)
    h = 2 / (9 * dof)
    return dof * (1 - h + z * math.sqrt(h)) ** 3


def assert_samples_follow(samples: torch.Tensor, probs: torch.Tensor, what: str) -> None:
    """Ids of probability 0 never appear; the counts of the others pass a chi-square test at ALPHA."""
    samples, probs = samples.cpu().flatten(), probs.double()
    assert samples.dtype == torch.int64, f"{what}: ids have dtype {samples.dtype}, expected torch.int64"
    assert 0 <= samples.min() and samples.max() < len(probs), f"{what}: ids outside [0, {len(probs)})"
    counts = torch.bincount(samples, minlength=len(probs)).double()
    outside = ((probs == 0) & (counts > 0)).nonzero().flatten().tolist()
    assert not outside, (f"{what}: ids {outside} lie outside the nucleus V(p) but were drawn "
                         f"{counts[outside].long().tolist()} times; counts {counts.long().tolist()}")
    inside = probs > 0
    if inside.sum() < 2:
        return
    expected = len(samples) * probs[inside]
    statistic = float(((counts[inside] - expected) ** 2 / expected).sum())
    dof = int(inside.sum()) - 1
    limit = chi_square_quantile(dof)
    assert statistic < limit, (
        f"{what}: counts {counts.long().tolist()} do not follow the probabilities "
        f"{[round(p, 4) for p in probs.tolist()]} (expected counts {[round(e, 1) for e in expected.tolist()]} on "
        f"V(p)): χ² = {statistic:.1f} > {limit:.1f}, the 1 − {ALPHA:g} quantile with {dof} degrees of freedom")


def greedy_oracle(logits: torch.Tensor) -> torch.Tensor:
    """argmax over the last dim, ties to the lowest id, one row at a time."""
    rows = logits.reshape(-1, logits.shape[-1]).cpu()
    best = [int((row == row.max()).nonzero()[0]) for row in rows]
    return torch.tensor(best, dtype=torch.int64).reshape(logits.shape[:-1])


def seeded(seed: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def batch_of(logits: torch.Tensor, n: int, device) -> torch.Tensor:
    return logits.repeat(n, 1).to(device)  # (n, vocab): n independent draws in one call


# ---------------------------------------------------------------------------------------------
# Toy models: a ``context_length``, a (1, t) -> (1, t, vocab) forward, and a record of their inputs.


class ToyLM(nn.Module):
    """Base of the toy models: checks its input as a TransformerLM would, and records it, the
    training mode and whether gradients were enabled, once per call."""

    def __init__(self, vocab_size: int, context_length: int):
        super().__init__()
        self.vocab_size, self.context_length = vocab_size, context_length
        self.scale = nn.Parameter(torch.ones(()))  # a parameter: logits track grad unless under no_grad
        self.inputs: list[list[int]] = []
        self.dtypes: list[torch.dtype] = []
        self.modes: list[bool] = []
        self.grad_enabled: list[bool] = []

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        if token_ids.dim() != 2 or token_ids.shape[0] != 1 or token_ids.shape[1] == 0:
            raise ValueError(f"the model is called on a (1, t) batch, t ≥ 1, got shape {tuple(token_ids.shape)}")
        if token_ids.shape[1] > self.context_length:
            raise ValueError(f"sequence length {token_ids.shape[1]} exceeds context_length={self.context_length}")
        self.inputs.append(token_ids[0].tolist())
        self.dtypes.append(token_ids.dtype)
        self.modes.append(self.training)
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.scale * self.logits(token_ids[0]).unsqueeze(0)  # (1, t, vocab)

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SuccessorLM(ToyLM):
    """Next id = (id + 1) mod vocab at every position, by a margin of 1000 logits: certain under any
    temperature ≤ 1 and any top_p (exp(−1000) is 0 in float32)."""

    def logits(self, ids):
        return 1000.0 * torch.nn.functional.one_hot((ids + 1) % self.vocab_size, self.vocab_size).float()


class TableLM(ToyLM):
    """Logits at position i: row (Σ ids[: i + 1]) mod vocab of a seeded random table. They depend on
    the whole prefix, so on which window is fed, and differ from one position to the next."""

    def __init__(self, vocab_size: int, context_length: int, seed: int, scale: float, device):
        super().__init__(vocab_size, context_length)
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("table", (scale * torch.randn(vocab_size, vocab_size, generator=generator)).to(device))

    def logits(self, ids):
        return self.table[ids.cumsum(0) % self.vocab_size]


class ConstantLM(ToyLM):
    """The same logits at every position whatever the input: decode's ids are independent draws."""

    def __init__(self, logits: torch.Tensor, context_length: int):
        super().__init__(len(logits), context_length)
        self.register_buffer("fixed", logits.clone())

    def logits(self, ids):
        return self.fixed.expand(len(ids), -1)


def slow_greedy_decode(model: nn.Module, prompt: list[int], max_new_tokens: int,
                       end_of_text_id: int | None = None) -> list[int]:
    """Greedy decoding written out: feed the last context_length ids, take the last position's
    argmax (ties to the lowest id), append, stop after end_of_text_id."""
    ids, new = list(prompt), []
    device = next(model.parameters()).device
    with torch.no_grad():
        for _ in range(max_new_tokens):
            window = torch.tensor([ids[-model.context_length:]], dtype=torch.int64, device=device)
            best = int(greedy_oracle(model(window)[0, -1].float()))
            ids.append(best)
            new.append(best)
            if best == end_of_text_id:
                break
    return new


def ids_of(output: torch.Tensor, device, what: str = "decode") -> list[int]:
    """Check decode's output is a 1-D int64 tensor on the device; return its ids."""
    assert isinstance(output, torch.Tensor), f"{what} returned {type(output).__name__}, expected a tensor"
    assert output.dim() == 1, f"{what} returned shape {tuple(output.shape)}, expected a 1-D tensor of new ids"
    assert output.dtype == torch.int64, f"{what} returned dtype {output.dtype}, expected torch.int64"
    assert output.device.type == torch.device(device).type, f"{what} returned ids on {output.device}, not {device}"
    return output.tolist()


# ---------------------------------------------------------------------------------------------
# sample_next_token


@pytest.mark.component("sample_next_token")
@pytest.mark.parametrize("case", NUCLEUS_CASES)
def test_samples_follow_nucleus_distribution(impl, device, case):
    """Ids are drawn from softmax(v/τ) restricted to V(p) and renormalized; ids outside V(p) never (A1 §6, eq. 24)."""
    temperature, top_p = NUCLEUS_CASES[case]
    samples = impl.sample_next_token(batch_of(TOY_LOGITS, SAMPLES, device), temperature, top_p, seeded(0, device))
    assert samples.shape == (SAMPLES,), f"shape {tuple(samples.shape)}, expected logits.shape[:-1] = ({SAMPLES},)"
    assert_samples_follow(samples, nucleus_oracle(TOY_LOGITS, temperature, top_p),
                          f"sample_next_token(τ={temperature}, top_p={top_p}) on probabilities {TOY_PROBS}")


@pytest.mark.component("sample_next_token")
def test_top_p_one_keeps_every_token(impl, device):
    """top_p = 1 filters nothing: a token of probability 0.002 is drawn at its rate (A1 §6)."""
    logits = torch.log(torch.tensor([0.6, 0.3, 0.098, 0.002]))
    samples = impl.sample_next_token(batch_of(logits, SAMPLES, device), 1.0, 1.0, seeded(1, device))
    assert_samples_follow(samples, nucleus_oracle(logits, 1.0, 1.0), "sample_next_token(τ=1, top_p=1)")
    assert (torch.bincount(samples.cpu(), minlength=4) > 0).all(), "top_p = 1 must keep every token"


@pytest.mark.component("sample_next_token")
def test_rows_are_sampled_independently(impl, device):
    """Each row of a batch is filtered and sampled from its own logits (A1 §6)."""
    rows = torch.stack([TOY_LOGITS, TOY_LOGITS.flip(0)])  # (2, vocab): different nuclei
    logits = rows[:, None, :].repeat(1, SAMPLES // 2, 1).to(device)  # (2, n, vocab)
    samples = impl.sample_next_token(logits, 1.0, 0.6, seeded(2, device))
    assert samples.shape == (2, SAMPLES // 2), f"shape {tuple(samples.shape)}, expected (2, {SAMPLES // 2})"
    for r in range(2):
        assert_samples_follow(samples[r], nucleus_oracle(rows[r], 1.0, 0.6), f"row {r} of a (2, n, vocab) batch")


def greedy_cases(device) -> torch.Tensor:
    """(8, 5, vocab) logits: random rows, and rows whose maximum is tied between two ids."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(8, 5, 40, generator=generator)
    logits[0, :, 7] = logits[0, :, 31] = 10.0  # tie between ids 7 and 31: the lower wins
    logits[1, :, 30] = logits[1, :, 2] = logits[1, :, 19] = 10.0
    return logits.to(device)


@pytest.mark.component("sample_next_token")
def test_temperature_zero_is_greedy(impl, device):
    """τ = 0 is the τ → 0 limit: the argmax of v, ties to the lowest id, shape logits.shape[:-1] (A1 §6)."""
    logits = greedy_cases(device)
    got = impl.sample_next_token(logits, 0.0, 0.9, seeded(4, device))
    assert got.shape == logits.shape[:-1] and got.dtype == torch.int64, (got.shape, got.dtype)
    expected = greedy_oracle(logits)
    assert torch.equal(got.cpu(), expected), f"τ = 0 gave {got.cpu()[:2].tolist()}, expected {expected[:2].tolist()}"


@pytest.mark.component("sample_next_token")
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_tiny_top_p_is_greedy(impl, device, temperature):
    """V(p) for a tiny p is the most probable token alone (ties to the lowest id): sampling is greedy (A1 §6)."""
    logits = greedy_cases(device)
    got = impl.sample_next_token(logits, temperature, 1e-9, seeded(5, device))
    expected = greedy_oracle(logits)
    assert torch.equal(got.cpu(), expected), \
        f"top_p = 1e-9 gave {got.cpu()[:2].tolist()}, expected the argmax {expected[:2].tolist()}"


@pytest.mark.component("sample_next_token")
def test_single_row_gives_a_scalar(impl, device):
    """Logits of shape (vocab,) give a 0-dim int64 id on the logits' device (A1 §6)."""
    got = impl.sample_next_token(TOY_LOGITS.to(device), 1.0, 1.0, seeded(6, device))
    assert isinstance(got, torch.Tensor) and got.shape == () and got.dtype == torch.int64, got
    assert got.device.type == torch.device(device).type and 0 <= int(got) < len(TOY_PROBS), got


@pytest.mark.strict
@pytest.mark.component("sample_next_token")
def test_half_precision_logits_are_computed_in_float32(impl, device):
    """fp16 logits of magnitude 6·10⁴ at τ = 0.5 do not overflow: the computation is in float32 (spec)."""
    # Exact in fp16 (spacing 32 there); v/τ = 1.2·10⁵ exceeds fp16's maximum 65504.
    logits = torch.tensor([60000.0, 59968.0, 0.0, -60000.0], dtype=torch.float16)
    got = impl.sample_next_token(batch_of(logits, 1000, device), 0.5, 0.95, seeded(7, device))
    assert got.dtype == torch.int64 and (got == 0).all(), \
        f"ids {torch.bincount(got.cpu().long(), minlength=4).tolist()} per token, expected all 0 (p(1) = e⁻⁶⁴)"


@pytest.mark.component("sample_next_token")
def test_same_generator_seed_same_ids(impl, device):
    """A generator in the same state gives the same ids; another seed other ids (A1 §6)."""
    logits = batch_of(TOY_LOGITS, 500, device)
    first, again = (impl.sample_next_token(logits, 1.0, 0.95, seeded(8, device)) for _ in range(2))
    other = impl.sample_next_token(logits, 1.0, 0.95, seeded(9, device))
    assert torch.equal(first, again), "the same generator seed gave different ids"
    assert not torch.equal(first, other), "different generator seeds gave the same 500 ids"


@pytest.mark.strict
@pytest.mark.component("sample_next_token")
@pytest.mark.parametrize("temperature, top_p, argument", [(-0.1, 0.9, "temperature"), (1.0, 0.0, "top_p"),
                                                          (1.0, 1.5, "top_p"), (1.0, -0.2, "top_p")],
                         ids=["temperature<0", "top_p=0", "top_p>1", "top_p<0"])
def test_sample_rejects_invalid_arguments(impl, device, temperature, top_p, argument):
    """τ < 0, or top_p outside (0, 1], raises ValueError naming the argument (spec)."""
    with pytest.raises(ValueError, match=argument):
        impl.sample_next_token(TOY_LOGITS.to(device), temperature, top_p, seeded(10, device))


# ---------------------------------------------------------------------------------------------
# decode


@pytest.mark.component("decode")
@pytest.mark.parametrize("prompt_length", [1, 3, 9], ids=["one-id", "short", "longer-than-context"])
def test_decode_greedy_matches_slow_loop(impl, device, prompt_length):
    """τ = 0 repeats argmax of the last position's logits on the last context_length ids (A1 §6)."""
    model = TableLM(vocab_size=29, context_length=6, seed=prompt_length, scale=3.0, device=device).to(device)
    prompt = [(5 * i + 2) % 29 for i in range(prompt_length)]
    expected = slow_greedy_decode(model, prompt, 15)
    got = impl.decode(model, torch.tensor(prompt, device=device), 15, temperature=0.0)
    assert ids_of(got, device) == expected, f"greedy decode gave {got.tolist()}, expected {expected}"


@pytest.mark.component("decode")
def test_decode_with_transformer_lm(impl, device):
    """With the implementation's own TransformerLM, greedy decoding matches the slow loop and sampling
    returns int64 ids in [0, vocab) (A1 §3, §6)."""
    decode = impl.decode
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # a seeded init that leaves the global generators as they were
        torch.manual_seed(0)
        model = impl.TransformerLM(vocab_size=61, context_length=8, d_model=32, num_layers=2, num_heads=4, d_ff=48,
                                   rope_theta=1000.0, device=device)
    prompt = [3, 14, 15, 9, 26]
    expected = slow_greedy_decode(model, prompt, 6)  # 5 + 6 ids > 8: the window slides
    greedy = decode(model, torch.tensor(prompt, device=device), 6, temperature=0.0)
    assert ids_of(greedy, device) == expected, f"greedy decode gave {greedy.tolist()}, expected {expected}"
    sampled = ids_of(decode(model, torch.tensor(prompt, device=device), 6, temperature=0.8, top_p=0.9,
                            generator=seeded(11, device)), device)
    assert len(sampled) == 6 and all(0 <= i < 61 for i in sampled), sampled


@pytest.mark.component("decode")
@pytest.mark.parametrize("temperature, top_p", [(2.0, 0.75), (0.5, 1.0)])
def test_decode_samples_follow_nucleus_distribution(impl, device, temperature, top_p):
    """Each step draws from softmax(v/τ) restricted to V(p), renormalized: a model with fixed logits
    gives independent draws that pass the chi-square test (A1 §6, eq. 24)."""
    model = ConstantLM(TOY_LOGITS.to(device), context_length=4).to(device)
    got = impl.decode(model, torch.tensor([0], device=device), 3000, temperature=temperature, top_p=top_p,
                      generator=seeded(12, device))
    assert len(ids_of(got, device)) == 3000, f"decode returned {len(got)} ids, expected max_new_tokens = 3000"
    assert_samples_follow(got, nucleus_oracle(TOY_LOGITS, temperature, top_p),
                          f"decode(τ={temperature}, top_p={top_p}) on probabilities {TOY_PROBS}")


@pytest.mark.component("decode")
def test_decode_stops_right_after_end_of_text(impl, device):
    """Decoding stops right after generating end_of_text_id, which is the last returned id; one in the
    prompt stops nothing; None never stops early (A1 §6)."""
    model = SuccessorLM(vocab_size=32, context_length=8).to(device)
    got = impl.decode(model, torch.tensor([0], device=device), 20, end_of_text_id=5, generator=seeded(13, device))
    assert ids_of(got, device) == [1, 2, 3, 4, 5], f"got {got.tolist()}, expected [1, 2, 3, 4, 5] ending at EOT 5"
    got = impl.decode(model, torch.tensor([9, 3], device=device), 20, end_of_text_id=9, generator=seeded(13, device))
    assert ids_of(got, device) == list(range(4, 10)), f"got {got.tolist()}: an EOT in the prompt must not stop"
    got = impl.decode(model, torch.tensor([4], device=device), 20, end_of_text_id=5, generator=seeded(13, device))
    assert ids_of(got, device) == [5], f"got {got.tolist()}: an EOT generated first is returned alone"
    got = impl.decode(model, torch.tensor([0], device=device), 20, end_of_text_id=None, generator=seeded(13, device))
    assert ids_of(got, device) == [(1 + i) % 32 for i in range(20)], f"got {got.tolist()}: None never stops"


@pytest.mark.component("decode")
@pytest.mark.parametrize("max_new_tokens", [0, 1, 7])
def test_decode_returns_max_new_tokens_new_ids(impl, device, max_new_tokens):
    """Without end of text, exactly max_new_tokens ids come back, the prompt not included (A1 §6)."""
    model = SuccessorLM(vocab_size=32, context_length=8).to(device)
    got = impl.decode(model, torch.tensor([3, 4], device=device), max_new_tokens, end_of_text_id=30,
                      generator=seeded(14, device))
    expected = list(range(5, 5 + max_new_tokens))
    assert ids_of(got, device) == expected, f"got {got.tolist()}, expected the {max_new_tokens} new ids {expected}"
    assert len(model.inputs) == max_new_tokens, f"{len(model.inputs)} model calls for {max_new_tokens} new ids"


@pytest.mark.component("decode")
@pytest.mark.parametrize("prompt, windows", [
    ([0, 1, 2], [[0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [3, 4, 5, 6, 7]]),
    (list(range(8)), [[3, 4, 5, 6, 7], [4, 5, 6, 7, 8], [5, 6, 7, 8, 9], [6, 7, 8, 9, 10], [7, 8, 9, 10, 11],
                      [8, 9, 10, 11, 12]]),
], ids=["grows-then-slides", "prompt-longer-than-context"])
def test_decode_feeds_the_last_context_length_ids(impl, device, prompt, windows):
    """Each step feeds one (1, t) int64 batch of the ids so far, cropped to the last context_length (A1 §6)."""
    model = SuccessorLM(vocab_size=32, context_length=5).to(device)
    got = impl.decode(model, torch.tensor(prompt, device=device), 6, generator=seeded(15, device))
    assert model.inputs == windows, f"the model was fed {model.inputs}, expected {windows}"
    assert all(dtype == torch.int64 for dtype in model.dtypes), f"the model was fed dtypes {set(model.dtypes)}"
    assert ids_of(got, device) == [prompt[-1] + 1 + i for i in range(6)], got.tolist()


@pytest.mark.component("decode")
def test_decode_same_seed_same_output(impl, device):
    """The same generator seed gives the same output; another seed another (A1 §6)."""
    model = TableLM(vocab_size=29, context_length=6, seed=16, scale=0.5, device=device).to(device)

    def run(seed: int) -> list[int]:
        return ids_of(impl.decode(model, torch.tensor([1, 2], device=device), 40, generator=seeded(seed, device)),
                      device)

    first, again, other = run(17), run(17), run(18)
    assert first == again, f"same seed, different outputs:\n{first}\n{again}"
    assert first != other, "different seeds gave the same 40 sampled ids"


@pytest.mark.strict
@pytest.mark.component("decode")
@pytest.mark.parametrize("training", [True, False], ids=["train-mode", "eval-mode"])
def test_decode_runs_in_eval_mode_without_grad_and_restores(impl, device, training):
    """The model runs in eval mode under no_grad; model.training is restored afterwards (spec)."""
    model = SuccessorLM(vocab_size=32, context_length=8).to(device).train(training)
    impl.decode(model, torch.tensor([0], device=device), 4, generator=seeded(19, device))
    assert model.modes and not any(model.modes), f"model.training during the calls: {model.modes}, expected False"
    assert not any(model.grad_enabled), f"grad enabled during the calls: {model.grad_enabled}, expected no_grad"
    assert model.training is training, f"model.training is {model.training} after decode, was {training} before"


@pytest.mark.strict
@pytest.mark.component("decode")
def test_decode_restores_training_mode_when_the_model_raises(impl, device):
    """model.training is restored even when a model call raises (spec)."""

    class FailsOnThirdCall(SuccessorLM):
        def logits(self, ids):
            if len(self.inputs) == 3:
                raise RuntimeError("model failure on purpose")
            return super().logits(ids)

    model = FailsOnThirdCall(vocab_size=32, context_length=8).to(device).train()
    with pytest.raises(RuntimeError, match="on purpose"):
        impl.decode(model, torch.tensor([0], device=device), 10, generator=seeded(20, device))
    assert model.training, "model.training was not restored after the model raised"


@pytest.mark.strict
@pytest.mark.component("decode")
@pytest.mark.parametrize("prompt, kwargs, argument", [
    ([], {}, "prompt"),
    ([[1, 2]], {}, "prompt"),
    ([1], dict(max_new_tokens=-1), "max_new_tokens"),
    ([1], dict(temperature=-0.5), "temperature"),
    ([1], dict(top_p=0.0), "top_p"),
    ([1], dict(top_p=1.5), "top_p"),
], ids=["empty-prompt", "2d-prompt", "max_new_tokens<0", "temperature<0", "top_p=0", "top_p>1"])
def test_decode_rejects_invalid_arguments(impl, device, prompt, kwargs, argument):
    """An empty or non-1-D prompt, max_new_tokens < 0, τ < 0 or top_p outside (0, 1] raise ValueError
    naming the argument, before any model call (spec)."""
    model = SuccessorLM(vocab_size=32, context_length=8).to(device)
    arguments = dict(max_new_tokens=3) | kwargs
    with pytest.raises(ValueError, match=argument):
        impl.decode(model, torch.tensor(prompt, dtype=torch.int64, device=device), **arguments)
    assert model.inputs == [], f"the model was called {len(model.inputs)} times before the error"
