"""GRPO step time (A5 §7, Algorithm 3): our loop's step (impl/programs/grpo.py on a PolicyRun) beside TRL's
GRPOTrainer, in the same process, on the same model, prompts, group size, new-token limit, batch sizes, learning
rate and reward (the kit's r1_zero), both sampling with transformers ``generate``; each step split into rollout,
scoring and train.

    python -m bench.alignment.grpo_step                           # SmolLM2, 4 GSM8K questions x 4, 48 new tokens
    python -m bench.alignment.grpo_step --policy tiny-llama       # seconds: a random 2-layer Llama, SmolLM2's tokenizer
    python -m bench.alignment.grpo_step --device cuda --config impl/programs/configs/grpo_gsm8k_gpu.toml

The split. Ours, as the program logs it (metrics.jsonl's rollout_s / scoring_s): rollout = the new weights into the
backend's copy of the policy + generate; scoring = the r1_zero reward in the scoring worker + the advantages. TRL's:
rollout = its calls of the model's ``generate``; scoring = its calls of the reward function. Train is the rest of
the step on each side (tokenization, log-probs, backward, the optimizer step). Each step is timed whole, from the
wall clock, synchronized on a GPU.

The same settings, named on each side: our ``rollout_batch_size`` (questions x ``group_size``) is TRL's generation
batch, ``per_device_train_batch_size`` x ``gradient_accumulation_steps``, with ``num_generations`` = group size and
``num_iterations`` 1: one optimizer step per rollout batch on both (our ``train_batch_size`` = the rollout batch).
AdamW(0.9, 0.95), no weight decay, a constant learning rate, the same gradient clipping; float32 training on both
(TRL's ``bf16`` default off) and no gradient checkpointing (TRL's default on: ours never recomputes); the KV cache
of the rollouts is ``rollout_cache`` on both (TRL's ``cache_implementation``), while ``rollout_dtype`` is ours alone
(TRL samples with the policy it trains). TRL's loss is "grpo"
(per-sequence means, like ours) with ``beta`` 0: with one iteration its ratio is 1, so its gradient is
reinforce_with_baseline's; ours runs ``--loss-type`` (grpo_clip adds the old policy's forward pass). Where the
sides differ: ours stops a completion after "</answer>", TRL's transformers path takes no stop string (it stops at
EOS or the limit), so the completion tokens of each are shown (ours as the program counts them, the completions
tokenized again; TRL's as generated); our reward runs in a worker process with a time limit, TRL's in the training
process.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import os
import platform
import sys
import tempfile
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import torch

from bench.common import report, sync, write_report
from impl.programs.alignment_tasks import problems, prompt_template, prompt_text, r1_zero_reward
from impl.programs.policies import ROLLOUT_CACHES, ROLLOUT_DTYPES

# What --config may set: the GRPO settings that change the work of a step (impl/programs/configs/*.toml's names).
CONFIG_KEYS = ("group_size", "rollout_batch_size", "train_batch_size", "gradient_accumulation_steps", "max_tokens",
               "learning_rate", "loss_type", "use_std_normalization", "sampling_temperature", "cliprange",
               "max_grad_norm", "rollout_dtype", "rollout_cache", "max_calculations")
TRL_ADVANTAGE_EPS = 1e-4  # the constant TRL adds to the group std: ours takes it too, so the advantages agree
TINY_LLAMA = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 2048, "tie_word_embeddings": True}


def tiny_llama_dir(folder: Path) -> Path:
    """A seeded random 2-layer Llama with SmolLM2's tokenizer, saved as a Hugging Face model directory."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from impl.alignment.smollm2 import smollm2_path

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id, **TINY_LLAMA))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def our_steps(args, policy: str, questions, out_dir: Path) -> list[dict]:
    """Each step of the grpo program's loop (warm-up first): its wall-clock and the split it logs."""
    from impl.programs.alignment_config import GRPOConfig, check_grpo
    from impl.programs.alignment_run import PolicyRun
    from impl.programs.grpo import rollout_step

    cfg = GRPOConfig(policy=policy, task="gsm8k", prompt="r1_zero", backend="transformers", device=args.device,
                     rollout_dtype=args.rollout_dtype, rollout_cache=args.rollout_cache, seed=0, out_dir=str(out_dir), eval_examples=1, max_tokens=args.max_tokens,
                     group_size=args.group_size, rollout_batch_size=args.questions * args.group_size,
                     train_batch_size=args.questions * args.group_size,
                     gradient_accumulation_steps=args.gradient_accumulation_steps, learning_rate=args.learning_rate,
                     loss_type=args.loss_type, use_std_normalization=args.use_std_normalization,
                     advantage_eps=TRL_ADVANTAGE_EPS, cliprange=args.cliprange,
                     sampling_temperature=args.sampling_temperature, max_grad_norm=args.max_grad_norm)
    check_grpo(cfg)
    runner = PolicyRun("grpo", cfg, resume=False, given={})
    # Each step samples all of these questions (in another order): TRL's dataset is the same questions.
    runner.train_problems = questions
    device, steps = torch.device(runner.device), []
    try:
        for _ in range(args.warmup + args.steps):
            sync(device)
            start = time.perf_counter()
            row = rollout_step(runner)
            sync(device)
            runner.step += 1
            steps.append({"wall": time.perf_counter() - start, "rollout": row["rollout_s"],
                          "scoring": row["scoring_s"], "tokens": row["response_tokens"] * cfg.rollout_batch_size})
    finally:
        runner.close()
    return steps


def trl_steps(args, policy: str, questions, out_dir: Path) -> list[dict]:
    """Each optimizer step of TRL's GRPOTrainer (warm-up first): wall-clock from on_step_begin to on_step_end, the
    time in the model's generate and in the reward function."""
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback

    from impl.programs.policies import load_policy

    device = torch.device(args.device)
    loaded = load_policy(policy, args.device, seed=0)[0]  # the same loading as ours: float32, pad = EOS if unset
    model, tokenizer = loaded.model, loaded.tokenizer
    current = {"rollout": 0.0, "scoring": 0.0, "tokens": 0}
    steps = []

    generate = model.generate

    def timed_generate(*positional, **keywords):
        start = time.perf_counter()
        out = generate(*positional, **keywords)
        sync(device)
        current["rollout"] += time.perf_counter() - start
        return out

    model.generate = timed_generate  # TRL's transformers path calls the model's own generate

    def r1_zero(prompts, completions, completion_ids, answer, **kwargs):
        start = time.perf_counter()
        rewards = [r1_zero_reward(completion, truth)["reward"] for completion, truth in zip(completions, answer)]
        current["scoring"] += time.perf_counter() - start
        current["tokens"] += sum(len(ids) for ids in completion_ids)
        return rewards

    class StepTimes(TrainerCallback):
        def on_step_begin(self, *unused, **kwargs):
            sync(device)
            current.update(rollout=0.0, scoring=0.0, tokens=0, start=time.perf_counter())

        def on_step_end(self, *unused, **kwargs):
            sync(device)
            steps.append({"wall": time.perf_counter() - current.pop("start"), **current})

    template = prompt_template("r1_zero")
    dataset = Dataset.from_list([{"prompt": prompt_text(template, p), "answer": p.answer} for p in questions])
    rollouts = args.questions * args.group_size
    config = trl.GRPOConfig(
        output_dir=str(out_dir), report_to="none", use_cpu=device.type == "cpu", seed=0, bf16=False,
        gradient_checkpointing=False, max_steps=args.warmup + args.steps, logging_steps=args.warmup + args.steps,
        save_strategy="no", disable_tqdm=True, num_generations=args.group_size,
        per_device_train_batch_size=rollouts // args.gradient_accumulation_steps,
        gradient_accumulation_steps=args.gradient_accumulation_steps, num_iterations=1,
        max_completion_length=args.max_tokens, temperature=args.sampling_temperature, top_p=1.0, top_k=0,
        cache_implementation="static" if args.rollout_cache == "static" else None,
        learning_rate=args.learning_rate, lr_scheduler_type="constant", weight_decay=0.0, adam_beta1=0.9,
        adam_beta2=0.95, max_grad_norm=args.max_grad_norm, beta=0.0, loss_type="grpo", epsilon=args.cliprange,
        scale_rewards="group" if args.use_std_normalization else "none")
    trainer = trl.GRPOTrainer(model=model, reward_funcs=r1_zero, args=config, train_dataset=dataset,
                              processing_class=tokenizer, callbacks=[StepTimes()])
    trainer.train()
    return steps


def summary_row(name: str, steps: list[dict], versus: float | None) -> list[str]:
    n = len(steps)
    mean = {key: sum(s[key] for s in steps) / n for key in ("wall", "rollout", "scoring", "tokens")}
    train = mean["wall"] - mean["rollout"] - mean["scoring"]
    return [name, f"mean of {n}", f"{mean['wall']:.2f}", f"{mean['rollout']:.2f}", f"{mean['scoring']:.2f}",
            f"{train:.2f}", f"{mean['tokens']:.0f}", f"{mean['tokens'] / mean['rollout']:.1f}",
            "1.00x" if versus is None else f"{mean['wall'] / versus:.2f}x"]


def step_rows(name: str, steps: list[dict], warmup: int) -> list[list[str]]:
    return [[name, f"{i + 1 - warmup}" if i >= warmup else "warm-up", f"{s['wall']:.2f}", f"{s['rollout']:.2f}",
             f"{s['scoring']:.2f}", f"{s['wall'] - s['rollout'] - s['scoring']:.2f}", f"{s['tokens']:.0f}",
             f"{s['tokens'] / s['rollout']:.1f}", ""] for i, s in enumerate(steps)]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="smollm2", help="smollm2, tiny-llama (a random 2-layer Llama) or a "
                                                           "Hugging Face model directory")
    parser.add_argument("--config", type=Path, help="a grpo TOML config (impl/programs/configs/): its sizes, "
                                                    "learning rate and loss; the flags below override it")
    parser.add_argument("--questions", type=int, default=4, help="questions per step (rollout_batch_size / "
                                                                 "group_size)")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=48, help="new tokens per completion at most")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--loss-type", default="reinforce_with_baseline",
                        choices=("reinforce_with_baseline", "grpo_clip"), help="ours (TRL's is 'grpo' either way)")
    parser.add_argument("--use-std-normalization", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--sampling-temperature", type=float, default=1.0)
    parser.add_argument("--cliprange", type=float, default=0.2)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--rollout-dtype", default="float32", choices=ROLLOUT_DTYPES,
                        help="ours: the backend's copy of the weights (TRL samples with the float32 policy itself)")
    parser.add_argument("--rollout-cache", default="dynamic", choices=ROLLOUT_CACHES,
                        help="both: static is generate's fixed-size KV cache (TRL's cache_implementation)")
    parser.add_argument("--max-calculations", type=int, default=0,
                        help="the questions: the first GSM8K train problems of at most this many calculator steps "
                             "(0: any)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps, after the warm-up")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", type=Path, default=Path("reports/bench-grpo-step.md"))
    first, _ = parser.parse_known_args(argv)
    if first.config is not None:  # the config's values become the defaults; flags given still win
        settings = tomllib.loads(first.config.read_text(encoding="utf-8"))
        defaults = {key: settings[key] for key in CONFIG_KEYS if key in settings}
        rollouts = defaults.pop("rollout_batch_size", None)
        if rollouts is not None:
            train = defaults.pop("train_batch_size", rollouts)
            if train != rollouts:
                parser.error(f"{first.config}: train_batch_size {train} != rollout_batch_size {rollouts}; the "
                             "benchmark compares one optimizer step per rollout batch")
            defaults["questions"] = rollouts // defaults.get("group_size", first.group_size)
        parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    if importlib.util.find_spec("trl") is None:  # checked before our loop's minutes, not after
        parser.error("the peer is TRL's GRPOTrainer: pip install -e '.[oracles]' (trl, datasets)")
    if args.questions * args.group_size % args.gradient_accumulation_steps:
        parser.error(f"gradient_accumulation_steps {args.gradient_accumulation_steps} must divide the "
                     f"{args.questions * args.group_size} rollouts of a step")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    load_before = os.getloadavg()[0]  # the machine may be shared: the load says how quiet it was
    questions = [p for p in problems("gsm8k", "train")
                 if not args.max_calculations or p.calculations <= args.max_calculations][:args.questions]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        policy = str(tiny_llama_dir(scratch / "tiny-llama")) if args.policy == "tiny-llama" else args.policy
        ours = our_steps(args, policy, questions, scratch / "ours")
        gc.collect()  # our policy, its copy in the backend and AdamW's moments go before TRL loads its own
        theirs = trl_steps(args, policy, questions, scratch / "trl")
    timed_ours, timed_theirs = ours[args.warmup:], theirs[args.warmup:]
    trl_mean = sum(s["wall"] for s in timed_theirs) / len(timed_theirs)
    rows = [*step_rows("ours (grpo program's step)", ours, args.warmup),
            *step_rows("TRL GRPOTrainer", theirs, args.warmup),
            summary_row("ours (grpo program's step)", timed_ours, trl_mean),
            summary_row("TRL GRPOTrainer", timed_theirs, None)]
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("transformers", "trl"))
    machine, rollouts = platform.processor() or platform.machine(), args.questions * args.group_size
    notes = [f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}: {machine}, {os.cpu_count()} "
             f"cores, {torch.get_num_threads()} torch threads "
             f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); python {platform.python_version()}, "
             f"{versions}",
             f"policy {args.policy}; {args.questions} GSM8K train questions x group {args.group_size} (r1_zero "
             f"prompt and reward), up to {args.max_tokens} new tokens at temperature {args.sampling_temperature}; "
             f"{args.gradient_accumulation_steps} microbatches of {rollouts // args.gradient_accumulation_steps} "
             f"per optimizer step, lr {args.learning_rate:g}; ours {args.loss_type}, TRL loss_type grpo (beta 0); "
             f"rollouts: {args.rollout_cache} KV cache, ours {args.rollout_dtype}, TRL float32",
             f"load average (1 min) {load_before:.2f} before the run, {os.getloadavg()[0]:.2f} after",
             f"{args.steps} timed steps after {args.warmup} warm-up, ours first then TRL's; train = step - "
             "rollout - scoring; tokens: completion tokens of the step; vs TRL: mean step time over TRL's"]
    text = report("GRPO step: ours vs TRL's GRPOTrainer", "python -m bench.alignment.grpo_step",
                  argv if argv is not None else sys.argv[1:], torch.device(args.device), notes,
                  ["loop", "step", "wall s", "rollout s", "scoring s", "train s", "tokens", "rollout tok/s",
                   "vs TRL"], rows)
    write_report(text, args.out)
    return 0


if __name__ == "__main__":  # the scoring worker starts with forkserver: it must not run this again
    sys.exit(main())
