"""Rollout throughput of each generation backend on the same prompts (A5 §7: the rollouts are most of a GRPO step):
new tokens per second, best of ``--repeat``, sampling at temperature 1 with a group of ``--n`` per prompt.

    python -m bench.alignment.rollouts --policy runs/sft                 # the kit's KV cache vs decoding without
    python -m bench.alignment.rollouts --policy smollm2 --backends transformers,vllm --max-tokens 128
                                          # vLLM: run it with the alignment_vllm session's python (nox makes it)
    python -m bench.alignment.rollouts --policy smollm2 --device cuda \
        --backends transformers,transformers:bfloat16,transformers:static,transformers:bfloat16:static

A backend may carry the rollout_dtype and rollout_cache settings after colons (``transformers:bfloat16:static``).

Peers: for the kit's TransformerLM, the same model decoded without a cache (impl.decode.decode, one sample at a
time: what the course's decoding does); for a Hugging Face model, transformers ``generate``. Prompts: the first
GSM8K test questions in the r1_zero prompt (arithmetic ones for kit-tiny). The tokens are counted by tokenizing
the completions, so every backend is counted the same way: take a trained policy (an untrained one writes invalid
UTF-8, whose replacement characters count three tokens each).
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

import torch

from bench.common import report, write_report
from impl.alignment.generation import Sampling
from impl.programs.alignment_tasks import problems, prompt_template, prompt_text
from impl.programs.policies import ROLLOUT_CACHES, ROLLOUT_DTYPES, load_policy, make_backend


class NoCacheDecoding:
    """The peer of the kit's backend: impl.decode.decode on a plain TransformerLM with the policy's weights, the
    whole window rerun for every new token, one sample at a time."""

    def __init__(self, policy):
        from impl.nn import TransformerLM
        from impl.programs.policies import KIT_TINY

        self.model = TransformerLM(**KIT_TINY)
        self.model.load_state_dict(policy.model.state_dict())  # KitPolicy's keys are TransformerLM's
        self.tokenizer = policy.tokenizer

    def generate(self, prompts: list[str], sampling: Sampling) -> list[str]:
        from impl.decode import decode

        generator = torch.Generator().manual_seed(sampling.seed)
        return [self.tokenizer.decode(decode(self.model, torch.tensor(self.tokenizer.encode(p)), sampling.max_tokens,
                                             sampling.temperature, sampling.top_p, self.tokenizer.eos_token_id,
                                             generator).tolist())
                for p in prompts for _ in range(sampling.n)]


def measure(backend, prompts: list[str], sampling: Sampling, tokenizer, repeat: int) -> tuple[float, int]:
    backend.generate(prompts, sampling)  # warm-up in the measured shapes: a static cache compiles for them
    best, tokens = float("inf"), 0
    for i in range(repeat):
        start = timeit.default_timer()
        texts = backend.generate(prompts, Sampling(temperature=sampling.temperature, max_tokens=sampling.max_tokens,
                                                   n=sampling.n, stop=(), seed=i))
        seconds = timeit.default_timer() - start
        if seconds < best:
            best = seconds
            tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return best, tokens


def variant(spec: str) -> tuple[str, str, str]:
    """``transformers:bfloat16:static`` -> (backend, rollout_dtype, rollout_cache)."""
    name, *options = spec.split(":")
    dtype = next((o for o in options if o in ROLLOUT_DTYPES), "float32")
    cache = next((o for o in options if o in ROLLOUT_CACHES), "dynamic")
    unknown = set(options) - {dtype, cache}
    if unknown:
        raise SystemExit(f"--backends {spec}: unknown options {sorted(unknown)} (dtypes {ROLLOUT_DTYPES}, caches "
                         f"{ROLLOUT_CACHES})")
    return name, dtype, cache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="kit-tiny", help="kit-tiny, smollm2 or a Hugging Face model directory")
    parser.add_argument("--backends", default="", help="comma-separated (default: kit for kit-tiny, transformers "
                                                        "and vllm where installed otherwise)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=8, help="completions per prompt (the GRPO group)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("reports/bench-rollouts.md"))
    args = parser.parse_args(argv)
    policy, _ = load_policy(args.policy, args.device, seed=0)
    task, prompt = ("arithmetic", "bare") if policy.is_kit else ("gsm8k", "r1_zero")
    prompts = [prompt_text(prompt_template(prompt), p) for p in problems(task, "test")[:args.prompts]]
    sampling = Sampling(temperature=1.0, max_tokens=args.max_tokens, n=args.n, stop=())
    if args.backends:
        names = args.backends.split(",")
    else:
        import importlib.util

        names = ["kit"] if policy.is_kit else ["transformers"] + (["vllm"] if importlib.util.find_spec("vllm") else [])
    rows, baseline = [], None
    peers = [("no cache (impl.decode, peer)", NoCacheDecoding(policy))] if policy.is_kit else []
    for name, backend in [*peers, *((n, make_backend(policy, *variant(n))) for n in names)]:
        seconds, tokens = measure(backend, prompts, sampling, policy.tokenizer, args.repeat)
        rate = tokens / seconds
        baseline = baseline or rate  # the first row: the peer (kit) or transformers (a Hugging Face model)
        rows.append([name, f"{args.prompts} x {args.n}", f"{tokens:,}", f"{seconds:.2f}", f"{rate:,.1f}",
                     f"{rate / baseline:.2f}x"])
    text = report(f"Rollout throughput: {args.policy}", "python -m bench.alignment.rollouts", argv or sys.argv[1:],
                  torch.device(args.device), [f"temperature 1, up to {args.max_tokens} new tokens, best of "
                                              f"{args.repeat}; {torch.get_num_threads()} torch threads"],
                  ["backend", "prompts x n", "new tokens", "seconds", "tokens/s", "vs first row"], rows)
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
