"""The vLLM rollout backend (impl/alignment/vllm_backend.py) on SmolLM2-135M-Instruct, against transformers' own
greedy decoding of the same checkpoint: the GenerationBackend contract (groups, stop strings, seeds, context) and
the weight sync of a GRPO step. One engine for the module: loading it takes minutes on a CPU."""

from __future__ import annotations

import copy
import os

import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed here: nox -s alignment_vllm runs these tests in its own "
                                   "environment")

from impl.alignment import smollm2  # noqa: E402 (after the skip: without vLLM nothing below applies)
from impl.alignment.generation import Sampling, cut_at_stop  # noqa: E402

PROMPTS = ["The capital of France is",
           "def fibonacci(n):",
           "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n"]
GREEDY = Sampling(temperature=0, max_tokens=24, stop=())
CONTEXT = 256  # tokens: the engine's max_model_len, small for a cheap KV cache and a cheap too-long prompt


@pytest.fixture(scope="module")
def backend():
    if smollm2.missing_packages():
        pytest.skip(f"SmolLM2's conversion needs {', '.join(smollm2.missing_packages())} ({smollm2.INSTALL})")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB: plenty for 256-token sequences
    from impl.alignment.vllm_backend import VLLMBackend

    return VLLMBackend(smollm2.smollm2_path(), max_model_len=CONTEXT)


@pytest.fixture(scope="module")
def policy():
    return smollm2.load_smollm2()


def transformers_greedy(model, tokenizer, prompts: list[str], max_tokens: int) -> list[list[int]]:
    """transformers' greedy decoding, one prompt at a time (no padding): the new token ids."""
    completions = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(ids, do_sample=False, max_new_tokens=max_tokens, pad_token_id=tokenizer.eos_token_id)
        completions.append(out[0, ids.shape[1]:].tolist())
    return completions


def texts(tokenizer, completions: list[list[int]]) -> list[str]:
    """The completions' text as a backend returns it: the end-of-text token dropped."""
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in completions]


def vllm_greedy_ids(backend, prompts: list[str], max_tokens: int) -> list[list[int]]:
    """vLLM's greedy token ids, through its own API: the text alone could hide two tokenizations of one string."""
    from vllm import SamplingParams

    outputs = backend.llm.generate(prompts, SamplingParams(temperature=0, max_tokens=max_tokens), use_tqdm=False)
    return [list(output.outputs[0].token_ids) for output in outputs]


def test_greedy_matches_transformers_token_for_token(backend, policy):
    model, tokenizer = policy
    expected = transformers_greedy(model, tokenizer, PROMPTS, GREEDY.max_tokens)
    assert vllm_greedy_ids(backend, PROMPTS, GREEDY.max_tokens) == expected
    assert backend.generate(PROMPTS, GREEDY) == texts(tokenizer, expected)


def test_each_prompts_completions_are_contiguous(backend):
    greedy = backend.generate(PROMPTS[:2], GREEDY)
    assert greedy[0] != greedy[1]
    assert backend.generate(PROMPTS[:2], Sampling(temperature=0, max_tokens=24, stop=(), n=3)) == [greedy[0]] * 3 + [
        greedy[1]] * 3
    sampled = backend.generate(PROMPTS, Sampling(max_tokens=8, n=4, stop=()))
    assert len(sampled) == 3 * 4 and len(set(sampled[:4])) > 1  # the group holds samples, not one copied


def test_stop_string_is_kept_and_ends_the_completion(backend):
    full = backend.generate(PROMPTS[:1], GREEDY)[0]
    stop = full.split()[1]  # a word inside the greedy text: generation must end right after it
    expected, found = cut_at_stop(full, [stop])
    assert found and len(expected) < len(full)
    assert backend.generate(PROMPTS[:1], Sampling(temperature=0, max_tokens=24, stop=(stop,))) == [expected]


def test_same_seed_same_completions(backend):
    sampling = Sampling(temperature=1.0, top_p=0.95, max_tokens=16, n=4, stop=(), seed=7)
    first = backend.generate(PROMPTS, sampling)
    assert backend.generate(PROMPTS, sampling) == first
    assert backend.generate(PROMPTS, Sampling(temperature=1.0, top_p=0.95, max_tokens=16, n=4, stop=(),
                                              seed=8)) != first
    # The seed is per prompt: the same prompt twice in one call gets two groups, not one repeated.
    twice = backend.generate([PROMPTS[0]] * 2, sampling)
    assert twice[:4] != twice[4:]


def prompt_of_length(tokenizer, tokens: int) -> str:
    prompt = " a" * tokens
    assert len(tokenizer.encode(prompt)) == tokens, "' a' is no longer one token: pick another filler"
    return prompt


def test_prompt_filling_the_context_is_refused_before_sampling(backend, monkeypatch):
    longest = prompt_of_length(backend.tokenizer, CONTEXT - 1)  # room for one new token
    assert len(backend.tokenizer.encode(backend.generate([longest], Sampling(max_tokens=8, stop=()))[0])) <= 1
    monkeypatch.setattr(backend.llm, "generate", lambda *args, **kwargs: pytest.fail("sampled"))
    with pytest.raises(ValueError, match=rf"prompt 1 is {CONTEXT} tokens: the model's context is {CONTEXT}"):
        backend.generate([PROMPTS[0], prompt_of_length(backend.tokenizer, CONTEXT)], GREEDY)


def test_weight_sync_matches_transformers_on_the_new_weights(backend, policy):
    """After a GRPO step the backend samples from the policy's new weights: here the tied embedding (so the
    output head too) and one MLP, scaled; vLLM's greedy text then changes and is transformers' on those weights."""
    model, tokenizer = policy
    # A prompt longer than a KV-cache block: the prefix cache keeps its first block, which the old weights computed.
    story = "Once upon a time a fox lived by the river. Every morning it crossed the old bridge to find food. " * 8
    block = backend.llm.llm_engine.vllm_config.cache_config.block_size
    assert len(tokenizer.encode(story)) > block
    prompts = [*PROMPTS, story + "One morning the bridge"]
    before = backend.generate(prompts, GREEDY)
    stepped = copy.deepcopy(model)
    with torch.no_grad():
        stepped.model.embed_tokens.weight.mul_(0.5)
        stepped.model.layers[3].mlp.down_proj.weight.mul_(-1.0)
    try:
        backend.load_weights(stepped.state_dict())
        after = backend.generate(prompts, GREEDY)
        assert after != before
        assert after == texts(tokenizer, transformers_greedy(stepped, tokenizer, prompts, GREEDY.max_tokens))
    finally:
        backend.load_weights(model.state_dict())
    assert backend.generate(prompts, GREEDY) == before


def test_untied_head_into_a_tied_engine_is_refused(backend, policy):
    state = dict(policy[0].state_dict())
    state["lm_head.weight"] = state["lm_head.weight"] * 2
    with pytest.raises(ValueError, match="ties lm_head to the token embedding"):
        backend.load_weights(state)
