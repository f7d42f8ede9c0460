"""The ``grpo`` program: GRPO on a policy (A5 §7, Algorithm 3): rollouts from the backend, group-normalized rewards,
the policy-gradient loss over microbatches, the new weights back into the backend.

    sft && grpo                                      # the small default: the tiny policy on a+b=, 40 steps, CPU
    grpo --config impl/programs/configs/grpo_gsm8k_gpu.toml --policy runs/sft-smollm2 --out-dir runs/grpo-smollm2
    grpo --out-dir runs/grpo --resume                # continue a stopped or killed run

Per step, metrics.jsonl gets the rollouts' mean reward (format and answer), the policy's mean token entropy and
response length, the clip fraction (grpo_clip), the gradient norm and where the time went (rollout / scoring /
train); every eval_interval steps the test accuracy with its 95% interval. curves.png plots them.
"""

from __future__ import annotations

import sys
import time

from impl.programs.alignment_config import GRPOConfig, check_grpo
from impl.programs.policy_program import policy_program

PANELS = [("reward", "rollout reward"), ("eval_accuracy", "test accuracy"), ("entropy", "token entropy (nats)"),
          ("response_tokens", "response length (tokens)"), ("clip_fraction", "clip fraction")]


def rollout_step(runner) -> dict:
    """One GRPO step (A5 Algorithm 3, lines 3-11): sample, score, normalize, then the policy-gradient updates."""
    import torch

    from impl.alignment import (compute_group_normalized_rewards, get_response_log_probs, grpo_microbatch_train_step,
                                masked_mean, tokenize_prompt_and_output)
    from impl.alignment.generation import Sampling
    from impl.programs.alignment_run import stop_strings
    from impl.programs.alignment_tasks import prompt_text

    cfg, model = runner.cfg, runner.model
    questions = runner.rng.sample(runner.train_problems, cfg.rollout_batch_size // cfg.group_size)
    prompts = [prompt_text(runner.template, p) for p in questions]
    started = time.perf_counter()
    runner.sync_backend()
    rollouts = runner.backend.generate(prompts, Sampling(
        temperature=cfg.sampling_temperature, max_tokens=cfg.max_tokens, n=cfg.group_size,
        stop=stop_strings(cfg.prompt), seed=cfg.seed * 1_000_003 + runner.step))
    rolled = time.perf_counter()
    truths = [p.answer for p in questions for _ in range(cfg.group_size)]
    scores, timeouts = runner.scorer.score(rollouts, truths)
    # The scores are computed in the scoring worker (with a time limit); compute_group_normalized_rewards reads them
    # in rollout order, which is the order it calls its reward function in.
    precomputed = iter(scores)
    advantages, raw_rewards, reward_stats = compute_group_normalized_rewards(
        lambda response, truth: next(precomputed), rollouts, truths, cfg.group_size, cfg.advantage_eps,
        cfg.use_std_normalization)
    scored = time.perf_counter()
    batch = tokenize_prompt_and_output([p for p in prompts for _ in range(cfg.group_size)], rollouts,
                                       runner.tokenizer)
    batch = {name: tensor.to(runner.device) for name, tensor in batch.items()}
    advantages, raw_rewards = advantages.to(runner.device)[:, None], raw_rewards.to(runner.device)[:, None]
    micro = cfg.train_batch_size // cfg.gradient_accumulation_steps
    old_log_probs = None
    if cfg.loss_type == "grpo_clip":  # the policy that sampled: fixed over the epochs on this batch
        with torch.no_grad():
            old_log_probs = torch.cat([get_response_log_probs(model, batch["input_ids"][i:i + micro],
                                                              batch["labels"][i:i + micro])["log_probs"]
                                       for i in range(0, cfg.rollout_batch_size, micro)])
    entropies, clip_fractions, grad_norms = [], [], []
    for _ in range(cfg.epochs_per_rollout_batch):
        for start in range(0, cfg.rollout_batch_size, micro):
            rows = slice(start, start + micro)
            out = get_response_log_probs(model, batch["input_ids"][rows], batch["labels"][rows],
                                         return_token_entropy=True)
            mask = batch["response_mask"][rows]
            _, metadata = grpo_microbatch_train_step(
                out["log_probs"], mask, cfg.gradient_accumulation_steps, cfg.loss_type, raw_rewards[rows],
                advantages[rows], None if old_log_probs is None else old_log_probs[rows], cfg.cliprange)
            entropies.append(masked_mean(out["token_entropy"].detach(), mask).item())
            if "clip_fraction" in metadata:
                clip_fractions.append(float(metadata["clip_fraction"]))
            if (start + micro) % cfg.train_batch_size == 0:
                grad_norms.append(runner.optimizer_step())
    row = {"reward": reward_stats["reward_mean"],
           "format_reward": sum(s["format_reward"] for s in scores) / len(scores),
           "answer_reward": sum(s["answer_reward"] for s in scores) / len(scores),
           "reward_timeouts": timeouts, "entropy": sum(entropies) / len(entropies),
           "response_tokens": batch["response_mask"].sum().item() / cfg.rollout_batch_size,
           "grad_norm": max(grad_norms), "rollout_s": round(rolled - started, 3),
           "scoring_s": round(scored - rolled, 3), "train_s": round(time.perf_counter() - scored, 3),
           "example": rollouts[0][:200]}
    if clip_fractions:
        row["clip_fraction"] = sum(clip_fractions) / len(clip_fractions)
    return row


def title(cfg) -> str:
    return (f"GRPO {cfg.loss_type}: {cfg.policy} on {cfg.task} ({cfg.prompt}), group {cfg.group_size}, "
            f"lr {cfg.learning_rate:g}")


main = policy_program("grpo", "GRPO on a policy (A5 §7).", GRPOConfig, check_grpo, rollout_step, PANELS, title)

if __name__ == "__main__":
    sys.exit(main())
