"""The rollout backends of the reference (impl/alignment): the KV cache against the model's full forward, each
backend's greedy text against a plain greedy loop that reruns the whole sequence every step, groups, stop strings,
seeds, weight sync and prompts that do not fit. The vLLM backend has its own tests (test_vllm_backend.py)."""

from __future__ import annotations

import pytest
import torch

from impl.alignment.generation import Sampling, cut_at_stop
from impl.alignment.kit_policy import KitLMBackend, KitPolicy, byte_tokenizer
from impl.alignment.transformers_backend import TransformersBackend
from impl.nn import KVCache, TransformerLM
from tests.conformance.alignment.hf import gpt2_tokenizer, tiny_llama

GREEDY = Sampling(temperature=0.0, max_tokens=12, stop=())
PROMPTS = ["The sum of 3 and 4 is", "Once upon a time"]


def kit_policy(seed: int = 0, **options) -> KitPolicy:
    torch.manual_seed(seed)
    return KitPolicy(vocab_size=257, context_length=64, d_model=32, num_layers=2, num_heads=4, d_ff=64, **options)


@torch.no_grad()
def greedy_without_cache(model, tokenizer, prompt: str, max_tokens: int) -> str:
    """The oracle: argmax of the whole sequence's last logits, one token at a time, until EOS or max_tokens."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    new: list[int] = []
    for _ in range(max_tokens):
        token = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
        if token == tokenizer.eos_token_id:
            break
        new.append(token)
    return tokenizer.decode(new)


@pytest.mark.parametrize("options", [{}, {"norm": "post"}, {"norm": "none", "ffn": "silu"}, {"use_rope": False},
                                     {"num_kv_heads": 2, "head_dim": 12, "tie_embeddings": True}, {"num_kv_heads": 1}],
                         ids=["pre-norm", "post-norm", "no-norm", "nope", "gqa-head-dim-tied", "mqa"])
def test_kv_cache_gives_the_logits_of_the_full_forward(options):
    """Grouped-query attention included: the cache keeps num_kv_heads heads, shared by their query heads."""
    model = TransformerLM(vocab_size=50, context_length=32, d_model=32, num_layers=2, num_heads=4, d_ff=64, **options)
    ids = torch.randint(0, 50, (3, 20), generator=torch.Generator().manual_seed(0))
    full = model(ids)
    cache = KVCache(2)
    pieces = [model(ids[:, :7], cache)] + [model(ids[:, t:t + 1], cache) for t in range(7, 15)] + \
        [model(ids[:, 15:], cache)]  # a prompt, one token at a time, then a chunk
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 20
    assert cache.layers[0].keys.shape == (3, options.get("num_kv_heads", 4), 20, options.get("head_dim", 8))


def test_kv_cache_refuses_to_grow_past_the_context():
    model = TransformerLM(vocab_size=50, context_length=8, d_model=16, num_layers=1, num_heads=2, d_ff=32)
    cache = KVCache(1)
    model(torch.zeros(1, 8, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="exceeds the model's context_length=8"):
        model(torch.zeros(1, 1, dtype=torch.long), cache)


def backends():
    """(name, policy, tokenizer, backend) for each in-process backend."""
    policy, tokenizer = kit_policy(), byte_tokenizer()
    yield "kit", policy, tokenizer, KitLMBackend(policy, tokenizer)
    llama = tiny_llama(seed=0)
    yield "transformers", llama, gpt2_tokenizer(), TransformersBackend(llama, gpt2_tokenizer())


@pytest.fixture(params=["kit", "transformers"])
def backend(request):
    return next(b for b in backends() if b[0] == request.param)[1:]


def test_greedy_text_is_the_plain_greedy_loops(backend):
    policy, tokenizer, rollouts = backend
    expected = [greedy_without_cache(policy, tokenizer, p, GREEDY.max_tokens) for p in PROMPTS]
    assert rollouts.generate(PROMPTS, GREEDY) == expected


def test_each_prompts_completions_are_contiguous(backend):
    policy, tokenizer, rollouts = backend
    greedy = rollouts.generate(PROMPTS, Sampling(temperature=0.0, max_tokens=6, stop=(), n=3))
    assert greedy == [greedy_without_cache(policy, tokenizer, p, 6) for p in PROMPTS for _ in range(3)]
    assert len(rollouts.generate(PROMPTS, Sampling(max_tokens=6, stop=(), n=4, seed=1))) == 8


def test_kit_backend_samples_each_prompt_on_its_own():
    policy, tokenizer = kit_policy(), byte_tokenizer()
    rollouts = KitLMBackend(policy, tokenizer)
    sampled = rollouts.generate(PROMPTS, Sampling(max_tokens=6, stop=(), n=4, seed=1))
    # Each group is its prompt's: the first prompt alone, seeded alike, gives the first group.
    assert rollouts.generate(PROMPTS[:1], Sampling(max_tokens=6, stop=(), n=4, seed=1)) == sampled[:4]


def test_transformers_backend_batches_prompts_of_different_lengths_with_left_padding():
    llama, tokenizer = tiny_llama(seed=0), gpt2_tokenizer()
    prompts = ["Hi", "The sum of 3 and 4 is", "Once upon a time there was"]
    one_by_one = TransformersBackend(llama, tokenizer, sequences_per_batch=1).generate(prompts, GREEDY)
    assert TransformersBackend(llama, tokenizer, sequences_per_batch=3).generate(prompts, GREEDY) == one_by_one
    assert one_by_one == [greedy_without_cache(llama, tokenizer, p, GREEDY.max_tokens) for p in prompts]


def test_transformers_backend_with_a_static_cache_gives_the_plain_greedy_loops_text():
    llama, tokenizer = tiny_llama(seed=0), gpt2_tokenizer()
    prompts = ["Hi", "The sum of 3 and 4 is", "Once upon a time there was"]
    static = TransformersBackend(llama, tokenizer, static_cache=True)
    assert static.generate(prompts, GREEDY) == [greedy_without_cache(llama, tokenizer, p, GREEDY.max_tokens)
                                                for p in prompts]
    assert static.generate(prompts[:1], GREEDY) == static.generate(prompts, GREEDY)[:1]  # another batch size


def test_with_a_static_cache_every_batch_of_a_call_has_one_size(monkeypatch):
    """generate compiles the static cache's decoding per batch size: a call's last, smaller batch is padded."""
    llama, tokenizer = tiny_llama(seed=0), gpt2_tokenizer()
    prompts = ["Hi", "The sum of 3 and 4 is", "Once upon a time there was", "One", "Two and three"]
    static = TransformersBackend(llama, tokenizer, sequences_per_batch=2, static_cache=True)
    sizes, sample = [], static.sample
    monkeypatch.setattr(static, "sample", lambda batch, *rest: sizes.append(len(batch)) or sample(batch, *rest))
    assert static.generate(prompts, GREEDY) == [greedy_without_cache(llama, tokenizer, p, GREEDY.max_tokens)
                                                for p in prompts]
    assert sizes == [2, 2, 2]


def test_transformers_backend_in_bfloat16_samples_the_bfloat16_policy_and_keeps_its_dtype_on_load():
    llama, tokenizer = tiny_llama(seed=0), gpt2_tokenizer()
    rollouts = TransformersBackend(llama, tokenizer, dtype=torch.bfloat16)
    assert next(llama.parameters()).dtype == torch.float32, "the policy itself is not cast"
    rollouts.load_weights(llama.state_dict())  # float32 weights, as the training policy sends them
    assert {p.dtype for p in rollouts.model.parameters()} == {torch.bfloat16}
    cast = tiny_llama(seed=0).to(torch.bfloat16)
    assert rollouts.generate(PROMPTS, GREEDY) == [greedy_without_cache(cast, tokenizer, p, GREEDY.max_tokens)
                                                  for p in PROMPTS]


def test_the_same_seed_gives_the_same_samples_and_another_seed_others(backend):
    _, _, rollouts = backend
    sampling = Sampling(max_tokens=10, stop=(), n=4, seed=7)
    first = rollouts.generate(PROMPTS, sampling)
    assert rollouts.generate(PROMPTS, sampling) == first
    assert rollouts.generate(PROMPTS, Sampling(max_tokens=10, stop=(), n=4, seed=8)) != first


def test_a_completion_ends_at_its_first_stop_string_which_it_keeps(backend):
    _, _, rollouts = backend
    free = rollouts.generate(PROMPTS[:1], GREEDY)[0]
    assert len(free) >= 6, free
    stop = free[3:5]  # a stop string the greedy text reaches: it must end there
    assert rollouts.generate(PROMPTS[:1], Sampling(temperature=0.0, max_tokens=12, stop=(stop, "never"))) == \
        [cut_at_stop(free, [stop])[0]]
    assert rollouts.generate(PROMPTS[:1], Sampling(temperature=0.0, max_tokens=12, stop=(stop,)))[0].endswith(stop)


def test_weights_loaded_into_the_backend_change_its_text_to_the_new_policys(backend):
    policy, tokenizer, rollouts = backend
    before = rollouts.generate(PROMPTS, GREEDY)
    with torch.no_grad():  # a training step stand-in: every weight moves
        for parameter in policy.parameters():
            parameter.add_(torch.randn_like(parameter) * parameter.std().clamp(min=1e-2))
    assert rollouts.generate(PROMPTS, GREEDY) == before, "the backend must hold its own copy of the weights"
    rollouts.load_weights(policy.state_dict())
    after = rollouts.generate(PROMPTS, GREEDY)
    assert after != before
    assert after == [greedy_without_cache(policy, tokenizer, p, GREEDY.max_tokens) for p in PROMPTS]


def test_a_prompt_without_room_for_a_new_token_is_refused_before_sampling(backend):
    _, tokenizer, rollouts = backend
    context = getattr(rollouts.model, "context_length", None) or rollouts.context_length
    too_long = "a " * context
    with pytest.raises(ValueError, match=r"prompt 1 has \d+ tokens: the model's context of"):
        rollouts.generate(["fine", too_long], GREEDY)
    with pytest.raises(ValueError, match="prompt 0 has 0 tokens"):
        rollouts.generate([""], GREEDY)


@pytest.mark.parametrize("settings, message", [
    ({"temperature": -1.0}, "temperature must be >= 0"), ({"top_p": 0.0}, r"top_p must lie in \(0, 1\]"),
    ({"max_tokens": 0}, "max_tokens must be >= 1"), ({"n": 0}, "n .completions per prompt. must be >= 1"),
    ({"stop": ("",)}, "a stop string must not be empty"),
])
def test_bad_sampling_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        Sampling(**settings)
